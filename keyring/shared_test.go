package keyring_test

import (
	"context"
	"errors"
	"testing"

	"github.com/bodycam/bodycam/evidence"
	"github.com/bodycam/bodycam/keyring"
)

// memKeys is a KeyStore in memory, as the catalog keeps keys.
type memKeys struct {
	rows []evidence.SigningKey
	err  error
}

func (m *memKeys) AddSigningKey(_ context.Context, k evidence.SigningKey) error {
	for _, r := range m.rows {
		if r.ID == k.ID {
			if r.PublicKeyPEM != k.PublicKeyPEM {
				return errors.New("conflict")
			}
			return nil
		}
	}
	m.rows = append(m.rows, k)
	return nil
}

func (m *memKeys) SigningKeys(context.Context) ([]evidence.SigningKey, error) { return m.rows, m.err }

func TestSharedKeys(t *testing.T) {
	ctx := context.Background()
	a, err := keyring.Open(t.TempDir(), keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := keyring.Open(t.TempDir(), keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store := &memKeys{}
	for i := 0; i < 2; i++ { // idempotent
		if err := a.Publish(ctx, store, "node-a"); err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(ctx, store, "node-b"); err != nil {
			t.Fatal(err)
		}
	}
	if len(store.rows) != 2 || store.rows[1].NodeID != "node-b" || store.rows[1].ID != b.ID() {
		t.Fatalf("published: %+v", store.rows)
	}
	// A row whose id is not its key's is never trusted under that id.
	forged := store.rows[1]
	forged.ID = "0123456789abcdef"
	store.rows = append(store.rows, forged)
	shared := keyring.WithCatalog(a, store)
	keys, err := shared.PublicKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].ID != a.ID() || !keys[0].Current || keys[0].Node != "node-a" ||
		keys[1].ID != b.ID() || keys[1].Current || keys[1].Node != "node-b" || !keys[1].Key.Equal(b.Public()[0].Key) {
		t.Fatalf("PublicKeys = %+v", keys)
	}
	// Signing and device secrets stay the local keyring's.
	if id, s := shared.Sign([]byte("x")); id != a.ID() || shared.ID() != a.ID() || !a.Verify(a.ID(), []byte("x"), s) ||
		shared.DeviceSecret("cam-1", "s") != a.DeviceSecret("cam-1", "s") {
		t.Fatal("Sign or DeviceSecret is not the local keyring's")
	}
	// The store does not answer: what was read last, and the error.
	store.err = errors.New("catalog down")
	keys, err = shared.PublicKeys(ctx)
	if err == nil || len(keys) != 2 {
		t.Fatalf("store down: %d keys, %v", len(keys), err)
	}
	// A plain keyring lists its own keys.
	if own, err := a.PublicKeys(ctx); err != nil || len(own) != 1 {
		t.Fatalf("keyring's PublicKeys = %+v, %v", own, err)
	}
}
