package ingest_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/headers"
)

// rtspClient speaks RTSP by hand on one connection, as a recorder (or an
// attacker) would, so that the test chooses every header itself.
type rtspClient struct {
	t    *testing.T
	c    net.Conn
	r    *bufio.Reader
	cseq int
}

func dialRTSP(t *testing.T, addr string, tlsConfig *tls.Config) *rtspClient {
	t.Helper()
	var c net.Conn
	var err error
	if tlsConfig != nil {
		c, err = tls.Dial("tcp", addr, tlsConfig)
	} else {
		c, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rtspClient{t: t, c: c, r: bufio.NewReader(c)}
}

// do sends one request with the given extra header lines and body, and
// reads the answer.
func (rc *rtspClient) do(method, url string, header []string, body string) *base.Response {
	rc.t.Helper()
	rc.cseq++
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s RTSP/1.0\r\nCSeq: %d\r\n", method, url, rc.cseq)
	for _, h := range header {
		b.WriteString(h + "\r\n")
	}
	if body != "" {
		fmt.Fprintf(&b, "Content-Type: application/sdp\r\nContent-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n" + body)
	rc.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := rc.c.Write([]byte(b.String())); err != nil {
		rc.t.Fatalf("%s: write: %v", method, err)
	}
	var res base.Response
	if err := res.Unmarshal(rc.r); err != nil {
		rc.t.Fatalf("%s: no answer: %v", method, err)
	}
	return &res
}

// A G.711 audio track: the smallest announcement bodycam records.
const pcmuSDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=test\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=control:trackID=0\r\n"

func basic(user, pass string) string {
	return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// digest answers a Digest challenge (RFC 2617 without qop, as RTSP does).
func digest(t *testing.T, challenge, user, pass, method, uri string) string {
	t.Helper()
	var a headers.Authenticate
	if err := a.Unmarshal(base.HeaderValue{challenge}); err != nil {
		t.Fatalf("challenge %q: %v", challenge, err)
	}
	resp := md5hex(md5hex(user+":"+a.Realm+":"+pass) + ":" + a.Nonce + ":" + md5hex(method+":"+uri))
	return fmt.Sprintf(`Authorization: Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s"`,
		user, a.Realm, a.Nonce, uri, resp)
}

// schemes lists the authentication schemes a 401 offers.
func schemes(res *base.Response) []string {
	var out []string
	for _, v := range res.Header["WWW-Authenticate"] {
		scheme, _, _ := strings.Cut(v, " ")
		out = append(out, scheme)
	}
	return out
}

// On plain RTSP the server offers Digest only, and a recorder sending its
// secret with Basic (in clear text) is refused with a Digest challenge,
// counted, and can still answer with Digest on the same connection.
func TestBasicAuthRefusedInClear(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	secret := h.register("cam-basic")
	url := "rtsp://" + h.rtsp + "/cam-basic"
	rc := dialRTSP(t, h.rtsp, nil)

	res := rc.do("ANNOUNCE", url, nil, pcmuSDP)
	if res.StatusCode != base.StatusUnauthorized || strings.Join(schemes(res), ",") != "Digest" {
		t.Fatalf("no credentials: %d, offered %v; want 401 offering Digest only", res.StatusCode, res.Header["WWW-Authenticate"])
	}
	res = rc.do("ANNOUNCE", url, []string{basic("cam-basic", secret)}, pcmuSDP)
	if res.StatusCode != base.StatusUnauthorized || strings.Join(schemes(res), ",") != "Digest" {
		t.Fatalf("the right secret with Basic: %d, offered %v; want 401 offering Digest only", res.StatusCode, res.Header["WWW-Authenticate"])
	}
	if m := h.metric("bodycam_ingest_refused_total"); !strings.Contains(m, `value:"basic_auth"`) {
		t.Fatalf("Basic refusal not counted: %s", m)
	}
	res = rc.do("ANNOUNCE", url, []string{digest(t, res.Header["WWW-Authenticate"][0], "cam-basic", secret, "ANNOUNCE", url)}, pcmuSDP)
	if res.StatusCode != base.StatusOK {
		t.Fatalf("Digest after the refused Basic: %d, want 200", res.StatusCode)
	}
}

// Over RTSPS, Basic is not clear text: it is offered beside Digest and a
// recorder publishing with it is recorded.
func TestBasicAuthOverRTSPS(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	const timeout = 2 * time.Second
	h := newHarness(t, harnessOptions{requestTimeout: timeout,
		tls: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}})
	// A connection that never starts its TLS handshake is closed at the
	// request timeout (gortsplib itself would wait for ever).
	silent := closeTimes(t, "127.0.0.2", h.rtsp, 1, "")
	secret := h.register("cam-tls-basic")
	url := "rtsps://" + h.rtsp + "/cam-tls-basic"
	rc := dialRTSP(t, h.rtsp, &tls.Config{InsecureSkipVerify: true})

	res := rc.do("ANNOUNCE", url, nil, pcmuSDP)
	offered := schemes(res)
	sort.Strings(offered)
	if res.StatusCode != base.StatusUnauthorized || strings.Join(offered, ",") != "Basic,Digest" {
		t.Fatalf("no credentials: %d, offered %q; want 401 offering Digest and Basic", res.StatusCode, offered)
	}
	auth := basic("cam-tls-basic", secret)
	if res = rc.do("ANNOUNCE", url, []string{auth}, pcmuSDP); res.StatusCode != base.StatusOK {
		t.Fatalf("Basic over RTSPS: %d, want 200", res.StatusCode)
	}
	res = rc.do("SETUP", url+"/trackID=0", []string{auth, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record"}, "")
	if res.StatusCode != base.StatusOK {
		t.Fatalf("SETUP: %d", res.StatusCode)
	}
	session, _, _ := strings.Cut(res.Header["Session"][0], ";")
	if res = rc.do("RECORD", url, []string{auth, "Session: " + session}, ""); res.StatusCode != base.StatusOK {
		t.Fatalf("RECORD: %d", res.StatusCode)
	}
	// Three seconds of G.711 silence, interleaved on the RTSPS connection.
	for i := range 150 {
		pkt := make([]byte, 4+12+160)
		pkt[0], pkt[1] = '$', 0
		binary.BigEndian.PutUint16(pkt[2:], 12+160)
		pkt[4], pkt[5] = 0x80, 0 // RTP v2, PCMU
		binary.BigEndian.PutUint16(pkt[6:], uint16(i))
		binary.BigEndian.PutUint32(pkt[8:], uint32(i*160))
		binary.BigEndian.PutUint32(pkt[12:], 0x1234)
		for j := 16; j < len(pkt); j++ {
			pkt[j] = 0xff
		}
		if _, err := rc.c.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	rc.do("TEARDOWN", url, []string{auth, "Session: " + session}, "")
	rec := h.waitRecordings("cam-tls-basic", 1, 30*time.Second)[0]
	if v := h.verify(rec.ID); !v.OK {
		t.Fatalf("verify: %+v", v)
	}
	if d := <-silent; d < timeout-200*time.Millisecond || d > timeout+3*time.Second {
		t.Fatalf("a connection without a TLS handshake was closed after %v, want the request timeout (%v)", d, timeout)
	}
}
