// Package keyring owns the server's Ed25519 signing keys: the current private
// key, which signs manifests and ledger checkpoints, and every public key the
// server has ever signed with, so old signatures still verify after a rotation.
//
// On disk, under <data-dir>/keys:
//
//	signing.key        the current private key, PKCS#8 PEM, mode 0600
//	public/<id>.pem    every public key, PKIX PEM with a "Created" header
//	credential.key     32 random bytes, mode 0600, from which device secrets
//	                   are derived (see DeviceSecret)
//
// A key id is the first 16 hex digits of the SHA-256 of the raw public key.
package keyring

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// PublicKey is a verification key with its id.
type PublicKey struct {
	ID      string
	Key     ed25519.PublicKey
	Created time.Time
	Current bool
	// Node is the node that published the key to the catalog (Shared),
	// when known.
	Node string
}

// Keyring holds the current signing key, all known public keys and the
// device credential key.
type Keyring struct {
	priv   ed25519.PrivateKey
	id     string
	public []PublicKey
	cred   []byte
}

// Options name key files kept outside the data directory, so that several
// nodes can share them. Empty means the file in the keys directory, created
// on first use.
type Options struct {
	SigningKey    string
	CredentialKey string
}

// KeyID derives a key's id.
func KeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

// Open loads the keyring from dir, creating keys on first use. Key files
// named in o are used instead of those in dir; they must not be readable by
// group or others. The signing key's public key is always added to dir.
func Open(dir string, o Options) (*Keyring, error) {
	if err := os.MkdirAll(filepath.Join(dir, "public"), 0o700); err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	cred, err := openCredentialKey(dir, o.CredentialKey)
	if err != nil {
		return nil, err
	}
	path := o.SigningKey
	if path == "" {
		path = filepath.Join(dir, "signing.key")
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			if err := generate(path); err != nil {
				return nil, err
			}
		}
	}
	priv, err := readPrivate(path)
	if err != nil {
		return nil, err
	}
	k := &Keyring{priv: priv, id: KeyID(priv.Public().(ed25519.PublicKey)), cred: cred}
	if err := addPublic(dir, priv.Public().(ed25519.PublicKey)); err != nil {
		return nil, err
	}
	if k.public, err = readPublics(dir, k.id); err != nil {
		return nil, err
	}
	return k, nil
}

// Rotate replaces the current private key in dir with a new one. The old
// private key is gone; its public key stays so its signatures still verify.
// It returns the new key's id.
func Rotate(dir string) (string, error) {
	if _, err := Open(dir, Options{}); err != nil { // make sure the old public key is on file
		return "", err
	}
	tmp := filepath.Join(dir, "signing.key.new")
	os.Remove(tmp)
	if err := generate(tmp); err != nil {
		return "", err
	}
	priv, err := readPrivate(tmp)
	if err != nil {
		return "", err
	}
	pub := priv.Public().(ed25519.PublicKey)
	if err := addPublic(dir, pub); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "signing.key")); err != nil {
		return "", fmt.Errorf("keys: %w", err)
	}
	return KeyID(pub), syncDir(dir)
}

func openCredentialKey(dir, file string) ([]byte, error) {
	path := file
	if path == "" {
		path = filepath.Join(dir, "credential.key")
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			key := make([]byte, 32)
			if _, err := rand.Read(key); err != nil {
				return nil, fmt.Errorf("keys: %w", err)
			}
			if err := writeNew(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
				return nil, err
			}
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("credential-key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("credential-key: %s is readable by others (mode %v); chmod 600 it", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("credential-key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) < 32 {
		return nil, fmt.Errorf("credential-key: %s must hold at least 32 bytes as hex", path)
	}
	return key, nil
}

// DeviceSecret derives the RTSP secret of a device from the credential key,
// its id and its salt. Digest authentication, which ffmpeg and GStreamer use,
// needs the secret itself to check a response; deriving it means the secret
// is stored nowhere (the catalog keeps only a salt and an argon2id hash), and
// a database dump alone gives nothing away. A new salt gives a new secret.
func (k *Keyring) DeviceSecret(deviceID, salt string) string {
	m := hmac.New(sha256.New, k.cred)
	m.Write([]byte("bodycam-device-secret-v1\x00" + deviceID + "\x00" + salt))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:24])
}

func generate(path string) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	return writeNew(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

func readPrivate(path string) (ed25519.PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("signing-key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("signing-key: %s is readable by others (mode %v); chmod 600 it", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing-key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("signing-key: %s is not a PEM private key", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing-key: %s: %w", path, err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing-key: %s is not an Ed25519 key", path)
	}
	return priv, nil
}

func addPublic(dir string, pub ed25519.PublicKey) error {
	path := filepath.Join(dir, "public", KeyID(pub)+".pem")
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	blk := &pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"Created": time.Now().UTC().Format(time.RFC3339Nano)}, Bytes: der}
	err = writeNew(path, pem.EncodeToMemory(blk), 0o644)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	return err
}

func readPublics(dir, current string) ([]PublicKey, error) {
	files, err := filepath.Glob(filepath.Join(dir, "public", "*.pem"))
	if err != nil {
		return nil, err
	}
	var out []PublicKey
	for _, f := range files {
		pk, err := ParsePublicPEM(mustRead(f))
		if err != nil {
			return nil, fmt.Errorf("keys: %s: %w", f, err)
		}
		if want := strings.TrimSuffix(filepath.Base(f), ".pem"); pk.ID != want {
			return nil, fmt.Errorf("keys: %s holds key %s", f, pk.ID)
		}
		pk.Current = pk.ID == current
		out = append(out, pk)
	}
	// Oldest first; the current key is the newest, whatever the clock said.
	sort.Slice(out, func(i, j int) bool {
		if out[i].Current != out[j].Current {
			return out[j].Current
		}
		return out[i].Created.Before(out[j].Created)
	})
	return out, nil
}

// ParsePublicPEM reads a public key written by this package (or any PKIX
// Ed25519 PEM; Created is then zero).
func ParsePublicPEM(b []byte) (PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return PublicKey{}, errors.New("not a PEM public key")
	}
	key, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return PublicKey{}, err
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return PublicKey{}, errors.New("not an Ed25519 key")
	}
	created, _ := time.Parse(time.RFC3339Nano, blk.Headers["Created"])
	return PublicKey{ID: KeyID(pub), Key: pub, Created: created}, nil
}

// PublicPEM encodes a public key as PKIX PEM (what openssl reads).
func PublicPEM(pub ed25519.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func mustRead(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

// ID is the current key's id.
func (k *Keyring) ID() string { return k.id }

// Sign signs msg with the current key and returns the key id with the signature.
func (k *Keyring) Sign(msg []byte) (keyID string, sig []byte) {
	return k.id, ed25519.Sign(k.priv, msg)
}

// Public lists every known public key, oldest first.
func (k *Keyring) Public() []PublicKey { return append([]PublicKey(nil), k.public...) }

// Verify checks sig over msg with the key named keyID.
func (k *Keyring) Verify(keyID string, msg, sig []byte) bool {
	for _, p := range k.public {
		if p.ID == keyID {
			return ed25519.Verify(p.Key, msg, sig)
		}
	}
	return false
}

// writeNew writes a file that must not exist yet, durably.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("keys: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
