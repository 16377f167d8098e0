//go:build !unix

package notify

import "os/exec"

// killGroup leaves cmd as it is: without process groups, a timeout or
// shutdown kills the command's own process only, and waitDelay bounds the
// wait for its children.
func killGroup(cmd *exec.Cmd) {}
