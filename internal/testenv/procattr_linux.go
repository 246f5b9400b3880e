package testenv

import "syscall"

// sysProcAttr makes a child die with the test binary even if no cleanup runs (a panic,
// a test timeout, a shared Prometheus without testenv.Run). Pdeathsig fires when the
// forking OS thread exits; the Go runtime keeps its threads unless a goroutine exits
// while locked to one, which nothing here does.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
