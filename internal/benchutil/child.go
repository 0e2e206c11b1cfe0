package benchutil

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Child is a process a benchmark started (the server, the simulator),
// with its output in a log file for the error messages.
type Child struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // its exit status, once done
}

// StartChild starts argv with its output in logPath.
func StartChild(name, logPath string, argv ...string) (*Child, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, so that a Ctrl-C at the terminal reaches only
	// the benchmark, which then hangs up its viewers and stops the children
	// in order (a server that saw SIGINT first would end the sessions
	// itself and the hang-ups would fail). Pdeathsig: if the benchmark is
	// killed outright, the children do not outlive it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &Child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		f.Close()
		close(c.done)
	}()
	return c, nil
}

func (c *Child) Pid() int { return c.cmd.Process.Pid }

func (c *Child) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Stop asks the child to stop (SIGTERM, which both commands handle with an
// orderly shutdown) and kills it after grace. Signals go to its process
// group, so the ffmpeg the simulator runs to encode its clip goes too. The
// group is signalled only while the child is not yet reaped: its id cannot
// have been reused by then.
func (c *Child) Stop(grace time.Duration) {
	if c.Exited() {
		return
	}
	syscall.Kill(-c.Pid(), syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		fmt.Fprintf(os.Stderr, "%s did not stop within %v of SIGTERM; killing it\n", c.name, grace)
		syscall.Kill(-c.Pid(), syscall.SIGKILL)
		<-c.done
	}
}

// Failure describes a child that exited although it should still run.
func (c *Child) Failure() error {
	return fmt.Errorf("%s exited (%v); the end of its log (%s):\n%s", c.name, c.err, c.log, c.Tail(20))
}

// Tail returns the last n lines of the child's log.
func (c *Child) Tail(n int) string {
	b, _ := os.ReadFile(c.log)
	if len(bytes.TrimSpace(b)) == 0 {
		return "(empty)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Err is the child's exit status, once it has exited.
func (c *Child) Err() error {
	if !c.Exited() {
		return nil
	}
	return c.err
}

// CPUSeconds is the user+system CPU time the child used (its own children
// that it waited for included), once it has exited: exact where sampling
// /proc misses its last moments.
func (c *Child) CPUSeconds() float64 {
	if !c.Exited() || c.cmd.ProcessState == nil {
		return 0
	}
	return (c.cmd.ProcessState.UserTime() + c.cmd.ProcessState.SystemTime()).Seconds()
}
