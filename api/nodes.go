package api

import (
	"context"
	"net/http"
	"time"

	"github.com/bodycam/bodycam/coord"
	"github.com/bodycam/bodycam/ingest"
)

// Cluster is this node's view of the cluster (package cluster).
type Cluster interface {
	// Nodes lists every node the coordination backend knows.
	Nodes(ctx context.Context) ([]coord.NodeInfo, error)
	// Ping is nil while coordination answers, else why the node is degraded.
	Ping(ctx context.Context) error
}

// LeaseLister lists the device leases of every node: who publishes where.
type LeaseLister interface {
	DeviceLeases(ctx context.Context) ([]coord.DeviceLease, error)
}

// listNodes lists the cluster's nodes and what each records, for admins
// and auditors.
func (s *Server) listNodes(w http.ResponseWriter, r *http.Request) {
	if s.o.Cluster == nil {
		writeJSON(w, http.StatusOK, map[string]any{"items": []coord.NodeInfo{}})
		return
	}
	nodes, err := s.o.Cluster.Nodes(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "coordination does not answer: "+err.Error())
		return
	}
	if nodes == nil {
		nodes = []coord.NodeInfo{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": nodes})
}

// listLive lists who is publishing now on every node, scoped like footage
// for a supervisor of a unit. While coordination does not answer, it lists
// this node's publishers and says the list is partial.
func (s *Server) listLive(w http.ResponseWriter, r *http.Request) {
	items := []ingest.Live{}
	visible := s.deviceScope(r)
	body := map[string]any{}
	if s.o.Leases != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		leases, err := s.o.Leases.DeviceLeases(ctx)
		cancel()
		if err == nil {
			for _, l := range leases {
				if l.Recording != "" && visible(l.Device) {
					items = append(items, ingest.Live{DeviceID: l.Device, RecordingID: l.Recording, Since: l.Since,
						RemoteAddr: l.RemoteAddr, Codecs: l.Codecs, NodeID: l.Node})
				}
			}
			body["items"] = items
			writeJSON(w, http.StatusOK, body)
			return
		}
		body["partial"] = true
		body["error"] = "coordination does not answer: only this node's publishers are listed"
	}
	if s.o.Live != nil {
		for _, l := range s.o.Live.Live() {
			if visible(l.DeviceID) {
				items = append(items, l)
			}
		}
	}
	body["items"] = items
	writeJSON(w, http.StatusOK, body)
}
