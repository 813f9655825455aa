package runtimetest

// CheckStatic exports checkStatic to the tests.
var CheckStatic = checkStatic

// UnescapeMount exports unescapeMount to the tests.
var UnescapeMount = unescapeMount

// NamesDir exports namesDir to the tests.
var NamesDir = namesDir

// ParseStat exports parseStat to the tests.
var ParseStat = parseStat
