package live

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// batchCases are datagrams to two receivers, as a pass writes them:
// runs of equal sizes (GSO material), shorter ones ending runs, single
// ones, interleaved destinations.
var batchCases = []struct {
	to   int
	size int
}{
	{0, 1000}, {0, 1000}, {0, 1000}, {0, 500}, {1, 300}, {0, 1000}, {0, 1000},
	{1, 1200}, {1, 1200}, {1, 1201}, {1, 40}, {0, 7}, {0, 7}, {0, 7},
}

// Every datagram a held batchConn queues arrives whole, and in the order
// written to its address; one written while nobody holds it goes at once.
func TestBatchConnKeepsDatagramsAndOrder(t *testing.T) {
	testBatchConn(t, func(*batchConn) {})
}

func testBatchConn(t *testing.T, tweak func(*batchConn)) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := newBatchConn(c)
	tweak(b)
	var rx [2]*net.UDPConn
	for i := range rx {
		if rx[i], err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
			t.Fatal(err)
		}
		defer rx[i].Close()
	}
	// Each datagram's bytes say which it is.
	var want [2][][]byte
	for round := range 3 {
		b.hold()
		for i, d := range batchCases {
			p := bytes.Repeat([]byte{byte(round*len(batchCases) + i)}, d.size)
			want[d.to] = append(want[d.to], p)
			if _, err := b.WriteToAddrPort(p, rx[d.to].LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
				t.Fatal(err)
			}
		}
		b.release()
	}
	p := []byte("alone")
	want[1] = append(want[1], p)
	b.WriteTo(p, rx[1].LocalAddr()) // nobody holds it: sent at once
	buf := make([]byte, 2000)
	for i, r := range rx {
		r.SetReadDeadline(time.Now().Add(5 * time.Second))
		for j, w := range want[i] {
			n, err := r.Read(buf)
			if err != nil {
				t.Fatalf("receiver %d, datagram %d: %v", i, j, err)
			}
			if !bytes.Equal(buf[:n], w) {
				t.Fatalf("receiver %d, datagram %d: %d bytes of %d, want %d of %d", i, j, n, buf[0], len(w), w[0])
			}
		}
	}
}
