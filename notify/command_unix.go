//go:build unix

package notify

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// killGroup runs cmd in a process group of its own and makes a timeout or
// shutdown kill the whole group: a shell script's children ("sleep 60",
// curl) would otherwise outlive it, keep running and keep its output pipe
// open.
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
}
