// Package logging builds the process logger from the log section of the
// configuration: a logrus.Logger writing text on a terminal and JSON lines
// otherwise. Packages never use logrus's global logger: the composition root
// builds one logger here and injects it as a logrus.FieldLogger.
package logging

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sirupsen/logrus"
)

// Formats accepted by New.
const (
	FormatAuto = "auto" // text when out is a terminal, JSON otherwise
	FormatText = "text"
	FormatJSON = "json"
)

// New returns a logger writing to out at the given level ("trace", "debug",
// "info", "warn", "error", "fatal" or "panic") in the given format ("auto",
// "text" or "json"; "" means "auto"). Errors name the configuration keys
// log.level and log.format.
func New(level, format string, out io.Writer) (*logrus.Logger, error) {
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log.level: unknown level %q (valid: trace, debug, info, warn, error, fatal, panic)", level)
	}
	var f logrus.Formatter
	switch format {
	case FormatAuto, "":
		if IsTerminal(out) {
			f = textFormatter(true)
		} else {
			f = jsonFormatter()
		}
	case FormatText:
		f = textFormatter(IsTerminal(out))
	case FormatJSON:
		f = jsonFormatter()
	default:
		return nil, fmt.Errorf("log.format: unknown format %q (valid: auto, text, json)", format)
	}
	return &logrus.Logger{
		Out:       out,
		Formatter: f,
		Hooks:     make(logrus.LevelHooks),
		Level:     lvl,
		ExitFunc:  os.Exit,
	}, nil
}

// textFormatter logs "time level msg key=value" lines, in colour on a
// terminal.
func textFormatter(terminal bool) logrus.Formatter {
	return &logrus.TextFormatter{
		FullTimestamp:   true,
		TimestampFormat: "2006-01-02T15:04:05.000Z07:00",
		ForceColors:     terminal,
		DisableColors:   !terminal,
	}
}

// jsonFormatter logs one JSON object per line with "time", "level" and
// "msg" keys and the fields beside them.
func jsonFormatter() logrus.Formatter {
	return &logrus.JSONFormatter{TimestampFormat: time.RFC3339Nano}
}

// IsTerminal reports whether w is a terminal (a character device answering
// the terminal ioctl), as opposed to a file, pipe or buffer.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return false
	}
	return isTerminalFd(f.Fd())
}
