package main

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/lintel-edge/lintel/edge/config"
)

// Every CLI error says what to do next (issue 9). Usage errors get
// "run `lintel X -h`" from runMain; the rest carry a "下一步 next:" line.

// nextStepError is an error with the step that fixes it; withNextStep
// adds one only once, whoever wraps the error later.
type nextStepError struct {
	err  error
	next string
}

func (e *nextStepError) Error() string { return e.err.Error() + "\n下一步 next: " + e.next }
func (e *nextStepError) Unwrap() error { return e.err }

// withNextStep appends next to err, keeping its exit code; an error that
// already says what to do is returned as it is.
func withNextStep(err error, next string) error {
	if err == nil {
		return nil
	}
	var ns *nextStepError
	if errors.As(err, &ns) {
		return err
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return &exitError{ee.code, &nextStepError{ee.err, next}}
	}
	return &nextStepError{err, next}
}

// configNextStep explains a failed loadConfig(file): what to do depends on
// whether the file is missing, unreadable or has problems.
// loadConfig's other callers (run, check) can use it the same way.
func configNextStep(file string, err error) error {
	var ps config.Problems
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ps):
		return withNextStep(err, fmt.Sprintf("按上面的 文件:行:列 逐条修改，然后运行 fix each problem at its file:line:col above, then run `lintel check -c %s`", file))
	case errors.Is(err, fs.ErrNotExist):
		return withNextStep(err, "检查 -c 给出的配置文件路径（软件包安装 /etc/lintel/lintel.yaml） check the file given with -c (the package installs /etc/lintel/lintel.yaml)")
	case errors.Is(err, fs.ErrPermission):
		return withNextStep(err, "用 root 或 lintel 用户运行 run as root or as the lintel user (sudo -u lintel lintel …)")
	}
	return withNextStep(err, fmt.Sprintf("运行 run `lintel check -c %s` 查看详情 for details", file))
}
