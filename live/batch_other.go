//go:build !(linux && (amd64 || arm64))

package live

import "net"

// batchSys elsewhere sends each datagram on its own.
type batchSys struct{ c *net.UDPConn }

func newBatchSys(c *net.UDPConn) *batchSys { return &batchSys{c: c} }

func (s *batchSys) send(q *sendQueue) { sendOneByOne(s.c, q) }
