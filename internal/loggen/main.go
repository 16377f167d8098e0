// Command loggen writes the deterministic Asterisk log mix used by the
// benchmarks and bench/compare.sh, and prints its ground truth as JSON.
//
//	go run ./internal/loggen -n 1000000 -seed 1 -o mix.log
//	go run ./internal/loggen -n 200000 -mix failures -o failures.log
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/sipguard/sipguard/internal/logmix"
)

func main() {
	n := flag.Int("n", 1_000_000, "number of lines")
	seed := flag.Uint64("seed", 1, "random seed; the same seed gives the same file")
	mix := flag.String("mix", "default", "default (20% failures), failures (100%) or noise (0%)")
	out := flag.String("o", "-", "output `FILE` (- for standard output)")
	truth := flag.String("truth", "", "also write the ground truth JSON to `FILE`")
	flag.Parse()
	if err := run(*n, *seed, *mix, *out, *truth); err != nil {
		fmt.Fprintln(os.Stderr, "loggen:", err)
		os.Exit(1)
	}
}

func run(n int, seed uint64, mixName, out, truthFile string) error {
	mix, err := logmix.ParseMix(mixName)
	if err != nil {
		return err
	}
	var w io.Writer = os.Stdout
	if out != "-" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	t, err := logmix.Generate(w, logmix.Options{Lines: n, Seed: seed, Mix: mix})
	if err != nil {
		return err
	}
	j, _ := json.Marshal(t)
	fmt.Fprintln(os.Stderr, string(j))
	if truthFile != "" {
		return os.WriteFile(truthFile, append(j, '\n'), 0o644)
	}
	return nil
}
