//go:build linux && (amd64 || arm64)

package live

import (
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// Without segmentation offload (a kernel or device that refuses it) the
// same datagrams arrive the same way, one message each.
func TestBatchConnWithoutGSO(t *testing.T) {
	testBatchConn(t, func(b *batchConn) { b.sys.gso = false })
}

// After the kernel refuses GSO, the queue goes again without it.
func TestBatchConnGSORefused(t *testing.T) {
	testBatchConn(t, func(b *batchConn) {
		if !b.sys.gso {
			t.Skip("this kernel has no UDP GSO") // nothing to refuse
		}
		b.sys.forceGSOError = true
	})
}

// BenchmarkBatchConn is the sending thread's CPU per datagram (its system
// time includes the kernel's loopback delivery) when 100 viewers get a
// 15-packet unit each: one sendto per datagram as pion writes them alone,
// against the batched pass (sendmmsg, a GSO message per viewer).
func BenchmarkBatchConn(b *testing.B) {
	for _, mode := range []string{"sendto", "sendmmsg", "sendmmsg+gso"} {
		b.Run(mode, func(b *testing.B) {
			c, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			defer c.Close()
			bc := newBatchConn(c)
			bc.sys.gso = bc.sys.gso && mode == "sendmmsg+gso"
			rx, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			rx.SetReadBuffer(8 << 20)
			defer rx.Close()
			go func() {
				buf := make([]byte, 2000)
				for {
					if _, err := rx.Read(buf); err != nil {
						return
					}
				}
			}()
			to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
			p := make([]byte, 1228) // an SRTP packet of a full RTP payload
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var cpu time.Duration
			b.ResetTimer()
			for range b.N {
				start := threadCPU()
				if mode != "sendto" {
					bc.hold()
				}
				for range 100 { // viewers (one receiver: the kernel's work is the same)
					for range 15 {
						bc.WriteToAddrPort(p, to)
					}
				}
				if mode != "sendto" {
					bc.release()
				}
				cpu += threadCPU() - start
				time.Sleep(2 * time.Millisecond) // the receiver keeps up
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*1500), "cpu-ns/datagram")
		})
	}
}

func threadCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(1, &ru) // RUSAGE_THREAD
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
