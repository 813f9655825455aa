module github.com/switchyard-net/switchyard

go 1.26.3

require (
	go.uber.org/zap v1.28.0
	gvisor.dev/gvisor v0.0.0-20260905035102-160fafc42237
)

require (
	go.uber.org/multierr v1.10.0 // indirect
	golang.org/x/exp v0.0.0-20250711185948-6ae5c78190dc // indirect
	golang.org/x/sys v0.43.0 // indirect
	golang.org/x/time v0.15.0 // indirect
)
