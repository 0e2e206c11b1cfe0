package password_test

import (
	"strings"
	"testing"

	"github.com/bodycam/bodycam/password"
)

func TestHashVerify(t *testing.T) {
	s := password.NewSecret()
	if len(s) < 32 || strings.ContainsAny(s, "/+=:@") {
		t.Fatalf("secret %q is short or not URL-safe", s)
	}
	h := password.Hash(s)
	if strings.Contains(h, s) || !strings.HasPrefix(h, "$argon2id$") {
		t.Fatalf("hash %q", h)
	}
	if ok, err := password.Verify(h, s); !ok || err != nil {
		t.Fatalf("right secret: %v %v", ok, err)
	}
	if ok, _ := password.Verify(h, s+"x"); ok {
		t.Fatal("wrong secret accepted")
	}
	if h2 := password.Hash(s); h2 == h {
		t.Fatal("hash is not salted")
	}
	for _, bad := range []string{"", "plain", "$argon2id$v=19$m=1,t=1,p=1$$", "$bcrypt$x$y$z$w"} {
		if ok, err := password.Verify(bad, s); ok || err == nil {
			t.Errorf("Verify(%q) = %v, %v", bad, ok, err)
		}
	}
}
