//go:build linux && (amd64 || arm64)

package live

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// gsoMaxSegments and gsoMaxBytes bound one GSO message: the kernel takes
// at most 64 segments (UDP_MAX_SEGMENTS before Linux 6.9) in one IP
// datagram's worth of bytes.
const (
	gsoMaxSegments = 64
	gsoMaxBytes    = 65000
	mmsgMax        = 256 // messages per sendmmsg call
)

// batchSys sends a queue with sendmmsg(2), runs of same-size datagrams to
// one address as one UDP_SEGMENT (GSO) message each.
type batchSys struct {
	c    *net.UDPConn
	raw  syscall.RawConn
	v6   bool // an AF_INET6 socket: IPv4 addresses go v4-mapped
	gso  bool // the kernel segments (cleared on the first refusal); under flushMu
	msgs []mmsghdr
	iovs []unix.Iovec
	sas  []unix.RawSockaddrInet6 // room for either family
	oob  []byte                  // one UDP_SEGMENT control message per message
	runs []run

	forceGSOError bool // tests: the kernel refuses the next GSO message
}

// mmsghdr is struct mmsghdr of 64-bit Linux.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

type run struct {
	first, count int // queue entries
	seg          int // segment size (all but the last exactly this)
}

var oobSpace = unix.CmsgSpace(2)

func newBatchSys(c *net.UDPConn) *batchSys {
	s := &batchSys{c: c}
	raw, err := c.SyscallConn()
	if err != nil {
		return s
	}
	s.raw = raw
	raw.Control(func(fd uintptr) {
		if d, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN); err == nil {
			s.v6 = d == unix.AF_INET6
		}
		// Reading the option succeeds where the kernel knows GSO.
		if _, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT); err == nil {
			s.gso = true
		}
	})
	return s
}

func (s *batchSys) send(q *sendQueue) {
	if s.raw == nil {
		sendOneByOne(s.c, q)
		return
	}
	s.runs = s.runs[:0]
	gso := s.gso
	for i := 0; i < len(q.ents); {
		r := run{first: i, count: 1, seg: q.ents[i].n}
		if gso {
			bytes := r.seg
			for j := i + 1; j < len(q.ents) && r.count < gsoMaxSegments; j++ {
				e := q.ents[j]
				if e.to != q.ents[i].to || e.n > r.seg || bytes+e.n > gsoMaxBytes {
					break
				}
				r.count++
				bytes += e.n
				if e.n < r.seg { // a shorter one ends the run
					break
				}
			}
		}
		s.runs = append(s.runs, r)
		i += r.count
	}
	for len(s.runs) > 0 {
		n := min(len(s.runs), mmsgMax)
		var sent int
		var err error
		if s.forceGSOError && gso {
			s.forceGSOError, err = false, unix.EIO
		} else {
			sent, err = s.sendRuns(q, s.runs[:n])
		}
		if err != nil && sent == 0 {
			if gso && isGSOError(err) {
				// The kernel or the device refuses segmentation offload:
				// without it from now on, this queue included.
				s.gso = false
				s.send(&sendQueue{buf: q.buf, ents: q.ents[s.runs[0].first:]})
				return
			}
			sent = 1 // skip the datagram(s) that fail, as a lone write would
		}
		s.runs = s.runs[sent:]
	}
}

// sendRuns sends runs with one sendmmsg and returns how many went.
func (s *batchSys) sendRuns(q *sendQueue, runs []run) (int, error) {
	if cap(s.msgs) < len(runs) {
		s.msgs = make([]mmsghdr, len(runs))
		s.iovs = make([]unix.Iovec, len(runs))
		s.sas = make([]unix.RawSockaddrInet6, len(runs))
		s.oob = make([]byte, len(runs)*oobSpace)
	}
	msgs := s.msgs[:len(runs)]
	for i, r := range runs {
		first, last := q.ents[r.first], q.ents[r.first+r.count-1]
		iov := &s.iovs[i]
		iov.Base = &q.buf[first.off]
		iov.SetLen(last.off + last.n - first.off) // the run's bytes are contiguous
		m := &msgs[i]
		*m = mmsghdr{}
		m.hdr.Iov = iov
		m.hdr.SetIovlen(1)
		m.hdr.Name = (*byte)(unsafe.Pointer(&s.sas[i]))
		m.hdr.Namelen = s.sockaddr(&s.sas[i], first.to)
		if r.count > 1 {
			oob := s.oob[i*oobSpace : (i+1)*oobSpace]
			h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
			h.Level, h.Type = unix.IPPROTO_UDP, unix.UDP_SEGMENT
			h.SetLen(unix.CmsgLen(2))
			*(*uint16)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = uint16(r.seg)
			m.hdr.Control = &oob[0]
			m.hdr.SetControllen(oobSpace)
		}
	}
	var n int
	var errno syscall.Errno
	err := s.raw.Write(func(fd uintptr) bool {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false // wait until the socket takes more
		}
		n, errno = int(r), e
		return true
	})
	runtime.KeepAlive(q)
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	return n, nil
}

// sockaddr writes to's address for the socket's family and returns its
// length.
func (s *batchSys) sockaddr(sa *unix.RawSockaddrInet6, to netip.AddrPort) uint32 {
	port := to.Port()
	if !s.v6 {
		if !to.Addr().Unmap().Is4() {
			return 0 // an IPv6 address on an IPv4 socket: sendmmsg refuses it alone
		}
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET}
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		p[0], p[1] = byte(port>>8), byte(port)
		sa4.Addr = to.Addr().Unmap().As4()
		return unix.SizeofSockaddrInet4
	}
	*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6}
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	p[0], p[1] = byte(port>>8), byte(port)
	sa.Addr = to.Addr().As16() // IPv4 as ::ffff:a.b.c.d
	if z := to.Addr().Zone(); z != "" {
		if ifi, err := net.InterfaceByName(z); err == nil {
			sa.Scope_id = uint32(ifi.Index)
		}
	}
	return unix.SizeofSockaddrInet6
}

// isGSOError: the kernel (EINVAL, ENOPROTOOPT) or the device (EIO) does not
// segment.
func isGSOError(err error) bool {
	var errno syscall.Errno
	return errors.As(err, &errno) && (errno == unix.EIO || errno == unix.EINVAL || errno == unix.ENOPROTOOPT)
}
