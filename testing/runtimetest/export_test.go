package runtimetest

// CheckStatic exports checkStatic to the tests.
var CheckStatic = checkStatic

// UnescapeMount exports unescapeMount to the tests.
var UnescapeMount = unescapeMount

// NamesDir exports namesDir to the tests.
var NamesDir = namesDir

// ParseStat exports parseStat to the tests.
var ParseStat = parseStat

// BuildCnitool exports buildCnitool (without Cnitool's once) to the
// tests.
var BuildCnitool = buildCnitool

// CniVersionInGoMod exports cniVersionInGoMod to the tests.
var CniVersionInGoMod = cniVersionInGoMod
