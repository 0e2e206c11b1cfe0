package keyring_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bodycam/bodycam/keyring"
)

func TestCreateOnFirstUseMode0600(t *testing.T) {
	dir := t.TempDir()
	k, err := keyring.Open(dir, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("signing.key mode %v, want 0600", st.Mode().Perm())
	}
	// Reopening loads the same key, not a new one.
	k2, err := keyring.Open(dir, keyring.Options{})
	if err != nil || k2.ID() != k.ID() {
		t.Fatalf("reopen: id %s vs %s, %v", k2.ID(), k.ID(), err)
	}
	id, sig := k.Sign([]byte("manifest"))
	if !k2.Verify(id, []byte("manifest"), sig) || k2.Verify(id, []byte("manifesT"), sig) {
		t.Fatal("signature check wrong")
	}
	if pubs := k.Public(); len(pubs) != 1 || !pubs[0].Current || pubs[0].ID != k.ID() {
		t.Fatalf("Public = %+v", pubs)
	}
}

func TestRotationKeepsOldPublicKeys(t *testing.T) {
	dir := t.TempDir()
	k1, err := keyring.Open(dir, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	oldID, oldSig := k1.Sign([]byte("old manifest"))
	newID, err := keyring.Rotate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if newID == oldID {
		t.Fatal("rotation kept the key")
	}
	k2, err := keyring.Open(dir, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if k2.ID() != newID {
		t.Fatalf("current %s, want %s", k2.ID(), newID)
	}
	if !k2.Verify(oldID, []byte("old manifest"), oldSig) {
		t.Fatal("old signature no longer verifies after rotation")
	}
	pubs := k2.Public()
	if len(pubs) != 2 {
		t.Fatalf("want 2 public keys, got %+v", pubs)
	}
	for _, p := range pubs {
		if p.Current != (p.ID == newID) {
			t.Errorf("key %s current=%v", p.ID, p.Current)
		}
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	file := filepath.Join(t.TempDir(), "k.pem")
	os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o644)
	if _, err := keyring.Open(dir, keyring.Options{SigningKey: file}); err == nil || !strings.Contains(err.Error(), "signing-key") {
		t.Fatalf("world-readable key file: %v, want an error naming signing-key", err)
	}
	os.Chmod(file, 0o600)
	k, err := keyring.Open(dir, keyring.Options{SigningKey: file})
	if err != nil {
		t.Fatal(err)
	}
	if k.ID() != keyring.KeyID(priv.Public().(ed25519.PublicKey)) {
		t.Fatal("key file not used")
	}
	os.WriteFile(file, []byte("junk"), 0o600)
	if _, err := keyring.Open(dir, keyring.Options{SigningKey: file}); err == nil {
		t.Fatal("junk key file accepted")
	}
}

func TestDeviceSecrets(t *testing.T) {
	dir := t.TempDir()
	k, err := keyring.Open(dir, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "credential.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credential.key: %v %v", st, err)
	}
	a := k.DeviceSecret("cam-1", "s1")
	if len(a) != 32 || strings.ContainsAny(a, "+/=") {
		t.Fatalf("secret %q", a)
	}
	if k.DeviceSecret("cam-1", "s1") != a {
		t.Fatal("not deterministic")
	}
	if k.DeviceSecret("cam-1", "s2") == a || k.DeviceSecret("cam-2", "s1") == a {
		t.Fatal("salt or id does not change the secret")
	}
	k2, _ := keyring.Open(dir, keyring.Options{})
	if k2.DeviceSecret("cam-1", "s1") != a {
		t.Fatal("secret changed across reopen")
	}
	k3, _ := keyring.Open(t.TempDir(), keyring.Options{})
	if k3.DeviceSecret("cam-1", "s1") == a {
		t.Fatal("another server derives the same secret")
	}
	shared := filepath.Join(t.TempDir(), "cred")
	os.WriteFile(shared, []byte(strings.Repeat("ab", 32)), 0o600)
	n1, err := keyring.Open(t.TempDir(), keyring.Options{CredentialKey: shared})
	if err != nil {
		t.Fatal(err)
	}
	n2, _ := keyring.Open(t.TempDir(), keyring.Options{CredentialKey: shared})
	if n1.DeviceSecret("cam-1", "s") != n2.DeviceSecret("cam-1", "s") {
		t.Fatal("nodes sharing a credential key derive different secrets")
	}
	os.Chmod(shared, 0o644)
	if _, err := keyring.Open(t.TempDir(), keyring.Options{CredentialKey: shared}); err == nil || !strings.Contains(err.Error(), "credential-key") {
		t.Fatalf("readable credential key: %v", err)
	}
}
