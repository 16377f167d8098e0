package audit

import (
	"bufio"
	"io"
	"io/fs"
	"strings"
	"time"
)

// AsteriskLogs are the logs Asterisk writes its version into.
var AsteriskLogs = []string{"/var/log/asterisk/full", "/var/log/asterisk/messages", "/var/log/asterisk/messages.log",
	"/var/log/asterisk/full.log"}

// logHeader is the line Asterisk's logger writes at the top of each log
// file it opens (logger.c, make_logchannel): "[date] Asterisk 20.5.0 built
// by user @ host on a x86_64 running Linux on 2023-...". Only Asterisk
// starts a line with it: attackers' text comes after a level and a module.
var logHeader = lazyRegexp(`^\[[^\]]{1,64}\] Asterisk ([0-9][0-9A-Za-z.~_+-]{0,40}) built by `)

// maxLogScan bounds how much of one log is read for the version.
const maxLogScan = 256 << 20

// LogVersion finds Asterisk's version in the logs: the last header of the
// most recently written log among files (paths in fsys, rooted at "/").
// from names the file; both are "" when none has a header.
func LogVersion(fsys fs.FS, files []string) (version, from string) {
	var newest time.Time
	for _, f := range files {
		name := strings.TrimPrefix(f, "/")
		st, err := fs.Stat(fsys, name)
		if err != nil || !st.Mode().IsRegular() || (from != "" && !st.ModTime().After(newest)) {
			continue
		}
		if v := lastHeader(fsys, name); v != "" {
			version, from, newest = v, f, st.ModTime()
		}
	}
	return version, from
}

func lastHeader(fsys fs.FS, name string) string {
	file, err := fsys.Open(name)
	if err != nil {
		return ""
	}
	defer file.Close()
	sc := bufio.NewScanner(io.LimitReader(file, maxLogScan))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	last := ""
	for sc.Scan() {
		if m := logHeader().FindSubmatch(sc.Bytes()); m != nil {
			last = string(m[1])
		}
	}
	return last
}
