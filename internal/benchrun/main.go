// Command benchrun runs a command and reports its wall time, CPU time and
// peak resident memory as one JSON object on stdout, so bench/compare.sh
// needs nothing installed (no GNU time).
//
//	benchrun -out OUT -err ERR -- command args...
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	out := flag.String("out", "", "write the command's stdout to `FILE` (default: discard)")
	errf := flag.String("err", "", "write the command's stderr to `FILE` (default: discard)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: benchrun [-out FILE] [-err FILE] -- command args...")
		os.Exit(2)
	}
	cmd := exec.Command(flag.Arg(0), flag.Args()[1:]...)
	cmd.Stdout = create(*out)
	cmd.Stderr = create(*errf)
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		fail(fmt.Errorf("%s: %w", flag.Arg(0), err))
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"wall_s":     wall.Seconds(),
		"user_s":     cmd.ProcessState.UserTime().Seconds(),
		"sys_s":      cmd.ProcessState.SystemTime().Seconds(),
		"max_rss_kb": ru.Maxrss,
	})
}

// create opens path for the command's output; "" discards it.
func create(path string) *os.File {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		fail(err)
	}
	return f
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchrun:", err)
	os.Exit(1)
}
