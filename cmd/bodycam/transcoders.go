package main

import "github.com/bodycam/bodycam/live"

// transcoders are the live relay's converters; see transcode.go.
func transcoders() live.Transcoders { return live.Transcoders{} }
