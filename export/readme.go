package export

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bodycam/bodycam/evidence"
)

// readme is README.txt: what the export holds and, concretely, how to check
// it with bodycam and with standard tools.
func readme(c CaseData, keyIDs, manifestKeys []string, origins []*evidence.ManifestOrigin, receipts []signedReceipt) []byte {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "(not ended)"
		}
		return t.UTC().Format(time.RFC3339)
	}
	zip := "case-" + c.Case.ID + ".zip"
	signer := c.Signer.ID()
	var signerKey PublicKey
	for _, k := range c.Keys {
		if k.ID == signer {
			signerKey = k
		}
	}

	p("COURT EXPORT OF CASE %s", c.Case.ID)
	p("%s", strings.Repeat("=", len("COURT EXPORT OF CASE "+c.Case.ID)))
	p("")
	p("Title:            %s", c.Case.Title)
	p("State:            %s; officer in charge %s", c.Case.State, c.Case.Officer)
	p("Exported by:      %s at %s, by bodycam (format %s)", c.ExportedBy, c.ExportedAt.UTC().Format(time.RFC3339Nano), Format)
	p("Signing key:      %s (Ed25519)", signer)
	p("Key fingerprint:  %s", Fingerprint(signerKey.Key))
	p("                  (SHA-256 of the raw public key; its first 16 digits are the key id).")
	p("                  Compare it with the key the agency publishes before relying on")
	p("                  this export: whoever holds a key can sign; only a key you trust")
	p("                  proves where the files come from.")
	p("")
	p("The export of this case is itself recorded in the custody ledger (custody.json,")
	p("action \"export\", by %s).", c.ExportedBy)
	p("")
	p("WHAT IS HERE")
	p("")
	p("  README.txt          this file")
	p("  case.json           the case, its workflow steps, every evidence link (removed")
	p("                      ones too, with who removed them and why), and this export")
	p("  custody.json        the case's part of the custody ledger (every access and")
	p("                      change), with the digests and signed checkpoints needed to")
	p("                      check it without the rest of the ledger")
	p("  keys/<id>.pem       the server's public keys (Ed25519, PEM; openssl reads them)")
	p("  recordings/<id>/    per recording:")
	p("    init.mp4, 000001.m4s, ...   the ORIGINAL stored objects, byte for byte")
	p("    manifest.json               the manifest signed when the recording ended:")
	p("                                every object with its SHA-256 and chain link")
	p("    manifest.json.sig           its raw Ed25519 signature")
	p("    recording.json              the catalog's view: segments, chain links, gaps,")
	p("                                the case's links to it with their time windows")
	p("    derived/playable.mp4        a DERIVED copy for viewing: the init segment and")
	p("                                the media segments concatenated in order, a")
	p("                                fragmented MP4 any player plays. Its SHA-256 is in")
	p("                                recording.json. The originals are the evidence.")
	p("    original.<ext>              for a file a recorder stored itself and a dock")
	p("                                uploaded: that file, byte for byte (one object;")
	p("                                any player plays it)")
	p("    receipt.json                the receipt the server signed when it stored the")
	p("    receipt.json.sig            file (what the dock kept), and its raw signature")
	p("    copies/                     DERIVED copies chosen for this export (redacted")
	p("                                copies, clips), each with its provenance record")
	p("                                (<name>.provenance.json and .sig) signed by the")
	p("                                server: the original objects it was made from and")
	p("                                their SHA-256, what was done, every parameter")
	p("  SHA256SUMS          the SHA-256 of every file above")
	p("  SHA256SUMS.sig      the raw Ed25519 signature of SHA256SUMS by key %s", signer)
	p("")
	p("THE EVIDENCE")
	p("")
	if len(c.Recordings) == 0 {
		p("  No recording is linked to this case.")
	}
	for i, r := range c.Recordings {
		rec := r.Recording
		media := 0
		for _, s := range r.Segments {
			if s.Kind == evidence.KindMedia {
				media++
			}
		}
		p("  %s", rec.ID)
		p("    device %s, officer %s, %s to %s, %s (%s)", rec.DeviceID, rec.OfficerID, ts(rec.StartedAt), ts(rec.EndedAt), rec.State, rec.EndReason)
		if o := origins[i]; o != nil {
			mark := ""
			if o.Important {
				mark = ", marked important on the recorder"
			}
			p("    UPLOADED FILE %q, %d bytes, SHA-256 %s, by dock %s%s;", o.FileName, o.Size, o.SHA256, o.Dock, mark)
			p("    %s is that file byte for byte; manifest signed by key %s, receipt by key %s", ObjectFile(r.Segments[0].Key), manifestKeys[i], receipts[i].keyID)
		} else {
			p("    %d objects (%d media segments); manifest signed by key %s", len(r.Segments), media, manifestKeys[i])
		}
		for _, pr := range pairs(c) {
			switch rec.ID {
			case pr.Primary:
				p("    PRIMARY COPY of its event: recording %s is the same event as streamed live", pr.Stream)
			case pr.Stream:
				p("    the same event as recording %s, the recorder's own file, which is the primary copy", pr.Primary)
			}
		}
		for _, w := range activeWindows(c, rec.ID) {
			p("    linked to the case: %s", w)
		}
		if len(r.Gaps) > 0 {
			p("    %d gap(s) in the recording, listed in recording.json and the manifest:", len(r.Gaps))
			for _, g := range r.Gaps {
				p("      %s from %s to %s: %s", g.Kind, ts(g.Start), ts(g.End), g.Detail)
			}
		}
	}
	if prs := pairs(c); len(prs) > 0 {
		p("")
		p("  The same event, recorded twice: the recorder's own file, uploaded from a dock")
		p("  (the PRIMARY copy: complete, as the recorder stored it), and the live stream")
		p("  that came in while it recorded (a copy, which may have gaps where the network")
		p("  did):")
		for _, pr := range prs {
			p("    primary %s  <->  live stream %s", pr.Primary, pr.Stream)
		}
	}
	p("")
	p("  When a link covers only a time window, the whole recording is still included:")
	p("  its chain and its signed manifest cover the whole recording, and a part could")
	p("  not be checked on its own. The window is in recording.json and case.json.")
	var removed []string
	for _, l := range c.Links {
		if l.Active() {
			continue
		}
		still := slices.ContainsFunc(c.Recordings, func(r RecordingData) bool { return r.Recording.ID == l.RecordingID })
		what := "its recording is not in this export"
		if still {
			what = "its recording is in this export through another link"
		}
		removed = append(removed, fmt.Sprintf("  link %s of recording %s, removed by %s at %s: %q; %s.",
			l.ID, l.RecordingID, l.UnlinkedBy, ts(l.UnlinkedAt), l.UnlinkReason, what))
	}
	if len(removed) > 0 {
		p("")
		p("  Links removed from the case (kept on record, see case.json):")
		for _, r := range removed {
			p("%s", r)
		}
	}
	p("")
	p("HOW TO CHECK IT")
	p("")
	p("1. With bodycam, offline (no server, no network):")
	p("")
	p("     bodycam verify %s                 # exit 0 only if every check passes", zip)
	p("     bodycam verify %s --key agency.pem  # also require this trusted key", zip)
	p("     bodycam verify %s --json            # the report as JSON", zip)
	p("")
	p("   It checks the signature of SHA256SUMS, every file's hash, that no file was")
	p("   added or removed, each manifest's signature, each object against its manifest")
	p("   (hash, size, order) and the chain links, that the derived copy is exactly the")
	p("   originals concatenated, and the custody excerpt's chain and signed checkpoints;")
	p("   for an uploaded file, that the manifest's origin and the signed receipt name")
	p("   the very bytes of original.<ext>.")
	p("   Each failure is named with its file.")
	p("")
	p("2. With standard tools (sha256sum, openssl 3), after")
	p("")
	p("     unzip %s -d case-%s && cd case-%s", zip, c.Case.ID, c.Case.ID)
	p("")
	p("   a) The signing key's fingerprint (compare with the agency's):")
	p("")
	p("     openssl pkey -pubin -in keys/%s.pem -outform DER | tail -c 32 | sha256sum", signer)
	p("")
	p("   b) The list of files is signed by that key (\"Signature Verified Successfully\"):")
	p("")
	p("     openssl pkeyutl -verify -pubin -inkey keys/%s.pem -rawin -in SHA256SUMS -sigfile SHA256SUMS.sig", signer)
	p("")
	p("   c) Every file is as listed (each line \"OK\"), and none was added (no output; bash):")
	p("")
	p("     sha256sum -c SHA256SUMS")
	p("     diff <(find . -type f ! -path ./SHA256SUMS ! -path ./SHA256SUMS.sig | sed 's|^\\./||' | sort) <(cut -c67- SHA256SUMS | sort)")
	p("")
	p("   d) Each manifest is signed, and lists each object's SHA-256 and chain link:")
	for i, r := range c.Recordings {
		d := "recordings/" + r.Recording.ID + "/"
		m := ObjectFile(r.Recording.ManifestKey)
		p("")
		p("     openssl pkeyutl -verify -pubin -inkey keys/%s.pem -rawin -in %s%s -sigfile %s%s.sig", manifestKeys[i], d, m, d, m)
		if origins[i] != nil {
			f := ObjectFile(r.Segments[0].Key)
			p("     sha256sum %s%s    # the same hash as in %s%s (and in its origin)", d, f, d, m)
			p("     openssl pkeyutl -verify -pubin -inkey keys/%s.pem -rawin -in %s%s -sigfile %s%s.sig", receipts[i].keyID, d, ReceiptFile, d, ReceiptFile)
			p("     # the receipt names the same sha256, size, object_key and chain_hash")
			continue
		}
		p("     sha256sum %s*.mp4 %s*.m4s    # the same hashes as in %s%s", d, d, d, m)
	}
	p("")
	p("   e) The derived copy is the originals concatenated in order (the same hash as")
	p("      \"derived\" in recording.json):")
	for _, r := range c.Recordings {
		if len(r.Segments) > 1 && r.Segments[0].Kind == evidence.KindInit {
			d := "recordings/" + r.Recording.ID + "/"
			p("")
			p("     cat %s%s %s[0-9]*.m4s | sha256sum", d, ObjectFile(r.Segments[0].Key), d)
			p("     sha256sum %sderived/playable.mp4", d)
		}
	}
	copies := false
	for _, r := range c.Recordings {
		for _, cp := range r.Copies {
			if !copies {
				p("")
				p("      A copy in copies/ is checked by its provenance record: its signature, that")
				p("      its output is the copy (sha256) and its sources are objects listed above:")
				copies = true
			}
			d := "recordings/" + r.Recording.ID + "/" + CopiesDir + "/"
			pr := ObjectFile(cp.ProvenanceKey)
			p("")
			p("     sha256sum %s%s    # = output.sha256 in %s", d, ObjectFile(cp.Key), pr)
			p("     openssl pkeyutl -verify -pubin -inkey keys/<signing_key_id in it>.pem -rawin -in %s%s -sigfile %s%s.sig", d, pr, d, pr)
		}
	}
	p("")
	p("   f) The chain: each object's chain_hash (in the manifest) is the SHA-256 of")
	p("")
	p("        bodycam-chain-v1\\n<prev_chain_hash>\\n<device>\\n<chain_seq>\\n<recording>\\n<seq>\\n<sha256>\\n<started_at in µs since 1970>\\n<duration_us>\\n")
	p("")
	p("      and prev_chain_hash is the chain_hash of the device's object before it, so")
	p("      a removed, altered or reordered object breaks the chain. A recording's")
	p("      chain_seq may jump: the objects between are other recordings of the device,")
	p("      stored interleaved with it (its node uploaded it late), and the object after")
	p("      the jump links to the last of them. For example:")
	for _, r := range c.Recordings {
		if len(r.Segments) == 0 {
			continue
		}
		s := r.Segments[0]
		text := strings.ReplaceAll(evidence.ChainText(s.Link()), "\n", `\n`)
		p("")
		p("     printf '%s' | sha256sum", text)
		p("     # = %s, the chain_hash of %s seq %d", s.ChainHash, r.Recording.ID, s.Seq)
	}
	p("")
	p("   g) The custody ledger: each event's digest is the SHA-256 of")
	p("      \"bodycam-custody-event-v1\\n\" and its fields, one per line (seq, time in µs,")
	p("      actor, role, remote, action, target kind, target id, case, detail, outcome;")
	p("      backslashes and line breaks escaped); hash_n = SHA-256(\"bodycam-custody-v1\\n\"")
	p("      n \"\\n\" hash_(n-1) \"\\n\" digest_n \"\\n\"); checkpoints sign")
	p("      \"bodycam-custody-checkpoint-v1\\n\" seq \"\\n\" hash \"\\n\" time_µs \"\\n\" (Ed25519, the")
	p("      signature base64 in custody.json). custody.json carries the other events'")
	p("      digests only, so the chain can be recomputed without revealing them.")
	p("      `bodycam verify` does this.")
	p("")
	p("Key files: %s", strings.Join(func() []string {
		var out []string
		for _, id := range keyIDs {
			out = append(out, "keys/"+id+".pem")
		}
		return out
	}(), ", "))
	return []byte(b.String())
}
