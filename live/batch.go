package live

import (
	"net"
	"net/netip"
	"sync"
)

// batchConn is the ICE UDP socket every viewer shares (under pion's UDP
// mux). While a writer holds it (a group's pass), datagrams are queued
// instead of sent, and go out together when the last holder releases it:
// one sendmmsg for the pass, each run of same-size datagrams to one
// viewer as one UDP GSO message where the kernel does segmentation
// offload (Linux 4.18 on). A datagram written while nobody holds it goes
// out at once. The order of the datagrams to one address is kept.
//
// pion's own batching (pion/transport's udp.BatchConn, used by its
// listener) flushes on a timer and has no segmentation offload; this one
// flushes when the pass is written, so it adds no delay and no timer.
type batchConn struct {
	*net.UDPConn
	sys *batchSys // the platform's: sendmmsg and GSO on Linux, else plain writes

	mu      sync.Mutex
	holders int
	q       *sendQueue // filling
	spare   *sendQueue // the other one, sent by flush

	flushMu sync.Mutex // one flush at a time, in the order queues were taken
}

// queuedMax bounds what one queue holds before a writer sends it itself.
const (
	queuedMax      = 1024
	queuedBytesMax = 1 << 20
)

// sendQueue is datagrams waiting: their bytes back to back in buf.
type sendQueue struct {
	buf  []byte
	ents []queued
}

type queued struct {
	to     netip.AddrPort
	off, n int
}

func newBatchConn(c *net.UDPConn) *batchConn {
	b := &batchConn{UDPConn: c, q: &sendQueue{}, spare: &sendQueue{}}
	b.sys = newBatchSys(c)
	return b
}

// hold starts queueing datagrams. A nil batchConn (no UDP) does nothing.
func (b *batchConn) hold() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.holders++
	b.mu.Unlock()
}

// release ends one hold and sends what is queued.
func (b *batchConn) release() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.holders--
	b.mu.Unlock()
	b.flush()
}

// flush sends what is queued.
func (b *batchConn) flush() {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	q := b.q
	if len(q.ents) == 0 {
		b.mu.Unlock()
		return
	}
	b.q, b.spare = b.spare, q
	b.mu.Unlock()
	b.sys.send(q)
	q.buf, q.ents = q.buf[:0], q.ents[:0]
}

// WriteToAddrPort is what pion's UDP mux writes with (ice's
// AddrPortReaderWriter).
func (b *batchConn) WriteToAddrPort(p []byte, to netip.AddrPort) (int, error) {
	b.mu.Lock()
	if b.holders == 0 && len(b.q.ents) == 0 {
		b.mu.Unlock()
		b.flushMu.Lock() // after a flush in progress, to keep the order
		defer b.flushMu.Unlock()
		return b.UDPConn.WriteToUDPAddrPort(p, to)
	}
	q := b.q
	q.ents = append(q.ents, queued{to: to, off: len(q.buf), n: len(p)})
	q.buf = append(q.buf, p...)
	now := b.holders == 0 || len(q.ents) >= queuedMax || len(q.buf) >= queuedBytesMax
	b.mu.Unlock()
	if now {
		b.flush()
	}
	return len(p), nil
}

// ReadFromAddrPort is ice's AddrPortReaderWriter's.
func (b *batchConn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	return b.UDPConn.ReadFromUDPAddrPort(p)
}

// WriteTo is net.PacketConn's.
func (b *batchConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if a, ok := addr.(*net.UDPAddr); ok {
		return b.WriteToAddrPort(p, a.AddrPort())
	}
	return b.UDPConn.WriteTo(p, addr)
}

// sendOneByOne is the fallback: each datagram on its own.
func sendOneByOne(c *net.UDPConn, q *sendQueue) {
	for _, e := range q.ents {
		c.WriteToUDPAddrPort(q.buf[e.off:e.off+e.n], e.to)
	}
}
