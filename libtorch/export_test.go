package libtorch

import "path/filepath"

// FixturePath is the path of the TorchScript fixture name ("echo") for the package's external tests.
func FixturePath(name string) string { return filepath.Join(fixtureDir, name+".pt") }

// TestDevice is the device under test, for the package's external tests.
var TestDevice = testDevice
