package filewatch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ReadFile reads a watched file the way every reader of one must: a regular
// file (not a directory, device or pipe that could block or never end), at
// most max bytes, and not empty or all blank. Its errors do not repeat the
// path, which the caller's error names with its setting: "no such file",
// "not a regular file (d---------)", "larger than N bytes", "is empty".
func ReadFile(path string, max int) ([]byte, error) {
	strip := func(err error) error {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
			if errors.Is(err, fs.ErrNotExist) {
				err = fmt.Errorf("no such file: %w", fs.ErrNotExist)
			}
		}
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, strip(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, strip(err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", st.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	switch {
	case err != nil:
		return nil, strip(err)
	case len(data) > max:
		return nil, fmt.Errorf("larger than %d bytes", max)
	case len(bytes.TrimSpace(data)) == 0:
		return nil, errors.New("is empty")
	}
	return data, nil
}
