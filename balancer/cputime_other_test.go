//go:build !unix

package balancer

import "time"

// processCPU returns 0: CPU time is measured on unix only.
func processCPU() time.Duration { return 0 }
