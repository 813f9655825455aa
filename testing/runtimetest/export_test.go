package runtimetest

// CheckStatic exports checkStatic to the tests.
var CheckStatic = checkStatic

// UnescapeMount exports unescapeMount to the tests.
var UnescapeMount = unescapeMount
