package main

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/bodycam/bodycam/internal/testsvc"
)

// The bench subtracts one command per INFO sample from what Redis counted:
// a sample must be one command, counted once it has run (so the first
// sample is in the second's count and the second is not). Commands a Lua
// script runs are counted too, which the benchmark's notes say.
func TestRedisInfoCountsItselfOnce(t *testing.T) {
	rd, err := testsvc.StartRedis()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	a, err := redisInfo(rd.Addr)
	if err != nil {
		t.Fatal(err)
	}
	b, err := redisInfo(rd.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if d := infoFloat(b, "total_commands_processed") - infoFloat(a, "total_commands_processed"); d != 1 {
		t.Fatalf("two INFO samples in a row: %v commands between them, want 1", d)
	}
	for _, k := range []string{"used_cpu_user", "used_cpu_sys"} {
		if _, err := strconv.ParseFloat(b[k], 64); err != nil { // a fresh server's may be 0
			t.Fatalf("no %s in INFO all: %q", k, b[k])
		}
	}

	// One EVAL that runs two commands.
	c, err := net.Dial("tcp", rd.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "EVAL \"redis.call('set','k','v'); return redis.call('get','k')\" 0\r\n")
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "$1") {
		t.Fatalf("EVAL: %q %v", line, err)
	}
	after, err := redisInfo(rd.Addr)
	if err != nil {
		t.Fatal(err)
	}
	d := infoFloat(after, "total_commands_processed") - infoFloat(b, "total_commands_processed") - 1
	t.Logf("one EVAL running SET and GET counts as %v commands", d)
	if d < 1 {
		t.Fatalf("EVAL not counted: %v", d)
	}
	if got := topCommands(b, after, 1, 8); !strings.Contains(got, "eval 1.00/s") || strings.Contains(got, "info") {
		t.Fatalf("topCommands: %s", got)
	}
}

func TestReadInfo(t *testing.T) {
	body := "# Stats\r\ntotal_commands_processed:42\r\n\r\n# Commandstats\r\ncmdstat_hset:calls=7,usec=10,usec_per_call=1.43,rejected_calls=0,failed_calls=0\r\n"
	reply := "$" + strconv.Itoa(len(body)) + "\r\n" + body + "\r\n"
	info, err := readInfo(bufio.NewReader(strings.NewReader(reply)))
	if err != nil {
		t.Fatal(err)
	}
	if infoFloat(info, "total_commands_processed") != 42 || commandCalls(info)["hset"] != 7 {
		t.Fatalf("%v", info)
	}
	if _, err := readInfo(bufio.NewReader(strings.NewReader("-ERR nope\r\n"))); err == nil {
		t.Fatal("an error reply read as INFO")
	}
}
