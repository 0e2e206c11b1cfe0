package keyring

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/bodycam/bodycam/evidence"
)

// KeyStore is where the nodes of a cluster keep their public keys, so that
// what one node signed verifies on every other: the catalog
// (catalog.Catalog satisfies it).
type KeyStore interface {
	AddSigningKey(ctx context.Context, k evidence.SigningKey) error
	SigningKeys(ctx context.Context) ([]evidence.SigningKey, error)
}

// Publish records every public key of the keyring in store as node's. A
// node calls it at start, before it signs anything; it is idempotent (a
// key on record stays as it is, under the node that first published it).
func (k *Keyring) Publish(ctx context.Context, store KeyStore, node string) error {
	for _, p := range k.public {
		err := store.AddSigningKey(ctx, evidence.SigningKey{ID: p.ID, PublicKeyPEM: string(PublicPEM(p.Key)), NodeID: node, CreatedAt: p.Created})
		if err != nil {
			return fmt.Errorf("keys: publishing key %s: %w", p.ID, err)
		}
	}
	return nil
}

// PublicKeys lists the keyring's public keys; with a Shared keyring it
// lists every node's (the api's Keys takes either).
func (k *Keyring) PublicKeys(context.Context) ([]PublicKey, error) { return k.Public(), nil }

// Shared is a keyring together with every node's public keys from a
// KeyStore: signing and device secrets are the local keyring's, the keys
// signatures are checked with are the union.
type Shared struct {
	local *Keyring
	store KeyStore
	mu    sync.Mutex
	last  []PublicKey // the store's keys as last read
}

// WithCatalog returns k seen with every node's public keys in store.
func WithCatalog(k *Keyring, store KeyStore) *Shared { return &Shared{local: k, store: store} }

// PublicKeys lists the local keys (oldest first, the current one last)
// then the other nodes' keys in the store, oldest first, each once. A key
// is listed under the id its bytes give: a row whose id does not match its
// key is left out, never trusted under the id it claims. When the store
// does not answer it returns what it read last, with the error.
func (s *Shared) PublicKeys(ctx context.Context) ([]PublicKey, error) {
	rows, err := s.store.SigningKeys(ctx)
	if err != nil {
		return s.Public(), fmt.Errorf("keys: the other nodes' keys: %w", err)
	}
	var stored []PublicKey
	for _, r := range rows {
		p, err := ParsePublicPEM([]byte(r.PublicKeyPEM))
		if err != nil || p.ID != r.ID {
			continue
		}
		p.Created, p.Node = r.CreatedAt, r.NodeID
		stored = append(stored, p)
	}
	sort.SliceStable(stored, func(i, j int) bool { return stored[i].Created.Before(stored[j].Created) })
	s.mu.Lock()
	s.last = stored
	s.mu.Unlock()
	return s.Public(), nil
}

// Public is PublicKeys without asking the store: the local keys and those
// it read last.
func (s *Shared) Public() []PublicKey {
	out := s.local.Public()
	seen := make(map[string]int, len(out))
	for i, p := range out {
		seen[p.ID] = i
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.last {
		if i, ok := seen[p.ID]; ok {
			out[i].Node = p.Node
			continue
		}
		seen[p.ID] = len(out)
		out = append(out, p)
	}
	return out
}

// DeviceSecret is the local keyring's (the credential key is shared).
func (s *Shared) DeviceSecret(deviceID, salt string) string {
	return s.local.DeviceSecret(deviceID, salt)
}

// ID is the local current key's id.
func (s *Shared) ID() string { return s.local.ID() }

// Sign signs with the local current key.
func (s *Shared) Sign(msg []byte) (string, []byte) { return s.local.Sign(msg) }
