// Command verifier checks credit-ledger's C2SP checkpoints, RFC 9162 proofs and tlog tiles with
// Go's golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog (and the standard library),
// an implementation independent of the ledger's own. The test suite builds and runs it
// (tests/integration/test_go_verifier.py); an outside auditor can run it the same way.
//
//	verifier checkpoint  -vkey VKEY [-witness VKEY ... -min-witnesses K] CHECKPOINT
//	verifier inclusion   -vkey VKEY -checkpoint CHECKPOINT PROOF.json
//	verifier consistency -vkey VKEY -old CHECKPOINT -new CHECKPOINT PROOF.json
//	verifier tiles       -vkey VKEY -url BASE [-old CHECKPOINT] [-proof PROOF.json ...] [-consistency PROOF.json] [-every]
//
// A CHECKPOINT file is the signed note itself (as GET /checkpoint serves it) or the ledger's
// JSON line {"v": 3, "note": ...}. PROOF.json files are the ledger's proof files. "tiles" reads
// the checkpoint at BASE/checkpoint and the hash tiles at BASE/tile/..., and rebuilds every proof
// it is asked for from the tiles alone (tlog.TileHashReader, ProveRecord, ProveTree).
//
// It prints one line, "VALID: ..." (exit status 0) or "INVALID: ..." (1); 2 is a usage error.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if len(os.Args) < 2 {
		usage("a command: checkpoint, inclusion, consistency or tiles")
	}
	flags := flag.NewFlagSet(os.Args[1], flag.ContinueOnError)
	vkey := flags.String("vkey", "", "the log's verifier key (name+id+base64 key)")
	var witnesses, proofs list
	flags.Var(&witnesses, "witness", "a witness's cosignature vkey (repeat)")
	minimum := flags.Int("min-witnesses", -1, "how many witnesses must have cosigned (default: all)")
	checkpoint := flags.String("checkpoint", "", "the checkpoint an inclusion proof is for")
	oldFile := flags.String("old", "", "the older checkpoint")
	newFile := flags.String("new", "", "the newer checkpoint")
	base := flags.String("url", "", "the ledger's HTTP base URL (tiles)")
	flags.Var(&proofs, "proof", "an inclusion proof file to rebuild from tiles (repeat)")
	consistency := flags.String("consistency", "", "a consistency proof file to rebuild from tiles")
	every := flags.Bool("every", false, "rebuild the inclusion proof of every leaf from tiles")
	if err := flags.Parse(os.Args[2:]); err != nil {
		os.Exit(2)
	}
	if *vkey == "" {
		usage("-vkey")
	}
	policy := &policy{minimum: *minimum}
	verdict, err := run(os.Args[1], flags.Args(), *vkey, witnesses, policy, *checkpoint, *oldFile, *newFile,
		*base, proofs, *consistency, *every)
	if err != nil {
		fmt.Printf("INVALID: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("VALID: %s\n", verdict)
}

func usage(what string) {
	fmt.Fprintf(os.Stderr, "verifier: missing %s (see the comment at the top of main.go)\n", what)
	os.Exit(2)
}

func run(command string, args []string, vkey string, witnesses []string, p *policy,
	checkpoint, oldFile, newFile, base string, proofs []string, consistency string, every bool) (string, error) {
	log, err := note.NewVerifier(vkey)
	if err != nil {
		return "", fmt.Errorf("the log's vkey: %v", err)
	}
	if err := p.load(witnesses); err != nil {
		return "", err
	}
	switch command {
	case "checkpoint":
		if len(args) != 1 {
			usage("the checkpoint file")
		}
		cp, err := readCheckpoint(args[0], log, p)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("checkpoint of %s signed by %s+%08x: size %d, root %s%s",
			cp.origin, log.Name(), log.KeyHash(), cp.tree.N, cp.tree.Hash, p.said(cp)), nil
	case "inclusion":
		if len(args) != 1 || checkpoint == "" {
			usage("-checkpoint and the proof file")
		}
		cp, err := readCheckpoint(checkpoint, log, p)
		if err != nil {
			return "", err
		}
		proof, err := readInclusion(args[0])
		if err != nil {
			return "", err
		}
		if proof.Size != cp.tree.N {
			return "", fmt.Errorf("the proof is for a tree of %d, the checkpoint signs %d", proof.Size, cp.tree.N)
		}
		if err := tlog.CheckRecord(proof.path, cp.tree.N, cp.tree.Hash, proof.Index, proof.leafHash); err != nil {
			return "", fmt.Errorf("tlog.CheckRecord: %v", err)
		}
		return fmt.Sprintf("leaf %d (position %d) is in the signed tree of %d%s",
			proof.Index, proof.Leaf.Position, cp.tree.N, p.said(cp)), nil
	case "consistency":
		if len(args) != 1 || oldFile == "" || newFile == "" {
			usage("-old, -new and the proof file")
		}
		older, err := readCheckpoint(oldFile, log, p)
		if err != nil {
			return "", err
		}
		newer, err := readCheckpoint(newFile, log, p)
		if err != nil {
			return "", err
		}
		proof, err := readConsistency(args[0])
		if err != nil {
			return "", err
		}
		if proof.OldSize != older.tree.N || proof.NewSize != newer.tree.N {
			return "", fmt.Errorf("the proof is for sizes %d -> %d, not %d -> %d",
				proof.OldSize, proof.NewSize, older.tree.N, newer.tree.N)
		}
		if err := tlog.CheckTree(proof.path, newer.tree.N, newer.tree.Hash, older.tree.N, older.tree.Hash); err != nil {
			return "", fmt.Errorf("tlog.CheckTree: %v", err)
		}
		return fmt.Sprintf("the tree of %d extends the tree of %d%s", newer.tree.N, older.tree.N, p.said(newer)), nil
	case "tiles":
		if base == "" {
			usage("-url")
		}
		return fromTiles(strings.TrimRight(base, "/"), log, p, oldFile, proofs, consistency, every)
	}
	usage("a command: checkpoint, inclusion, consistency or tiles")
	return "", nil
}

// --- Checkpoints -----------------------------------------------------------------------------

type signed struct {
	origin     string
	tree       tlog.Tree
	extensions []string
	cosigners  []string
}

func readCheckpoint(path string, log note.Verifier, p *policy) (*signed, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return openCheckpoint(raw, path, log, p)
}

// openCheckpoint verifies a checkpoint note with note.Open: signed by the log's key, its body a
// C2SP checkpoint of the log named by the key, and cosigned as the policy asks.
func openCheckpoint(raw []byte, where string, log note.Verifier, p *policy) (*signed, error) {
	if trimmed := bytes.TrimSpace(raw); len(trimmed) > 0 && trimmed[0] == '{' {
		var record struct {
			V    int    `json:"v"`
			Note string `json:"note"`
		}
		if err := json.Unmarshal(raw, &record); err != nil || record.V != 3 {
			return nil, fmt.Errorf("%s: not a version 3 checkpoint record", where)
		}
		raw = []byte(record.Note)
	}
	verifiers := append([]note.Verifier{log}, p.verifiers...)
	n, err := note.Open(raw, note.VerifierList(verifiers...))
	if err != nil {
		return nil, fmt.Errorf("%s: note.Open: %v", where, err)
	}
	cp := &signed{}
	byLog := false
	for _, sig := range n.Sigs {
		if sig.Name == log.Name() && sig.Hash == log.KeyHash() {
			byLog = true
		} else {
			cp.cosigners = append(cp.cosigners, sig.Name)
		}
	}
	if !byLog {
		return nil, fmt.Errorf("%s: not signed by the log's key %s+%08x", where, log.Name(), log.KeyHash())
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 {
		return nil, fmt.Errorf("%s: a checkpoint is origin, size and root hash", where)
	}
	if lines[0] != log.Name() {
		return nil, fmt.Errorf("%s: a checkpoint of %q, not of %q", where, lines[0], log.Name())
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return nil, fmt.Errorf("%s: tree size %q", where, lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return nil, fmt.Errorf("%s: root hash %q", where, lines[2])
	}
	cp.origin, cp.extensions = lines[0], lines[3:]
	cp.tree.N = size
	copy(cp.tree.Hash[:], root)
	if err := p.check(cp, where); err != nil {
		return nil, err
	}
	return cp, nil
}

// --- Witnesses: timestamped Ed25519 cosignatures (c2sp.org/tlog-cosignature) ------------------

// cosigner is a note.Verifier of cosignature/v1: its signature is an 8-byte big-endian time and
// an Ed25519 signature of "cosignature/v1\ntime <T>\n" followed by the note text.
type cosigner struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

func (c *cosigner) Name() string    { return c.name }
func (c *cosigner) KeyHash() uint32 { return c.hash }
func (c *cosigner) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	stamp := binary.BigEndian.Uint64(sig[:8])
	signed := append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", stamp)), msg...)
	return ed25519.Verify(c.key, signed, sig[8:])
}

func parseCosigner(vkey string) (*cosigner, error) {
	name, rest, _ := strings.Cut(vkey, "+")
	id, encoded, _ := strings.Cut(rest, "+")
	hash, err := strconv.ParseUint(id, 16, 32)
	key, err2 := base64.StdEncoding.DecodeString(encoded)
	if name == "" || len(id) != 8 || err != nil || err2 != nil || len(key) != 33 || key[0] != 0x04 {
		return nil, fmt.Errorf("witness vkey %q: not an Ed25519 cosignature key (type 0x04)", vkey)
	}
	digest := sha256.Sum256(append([]byte(name+"\n"), key...))
	if binary.BigEndian.Uint32(digest[:4]) != uint32(hash) {
		return nil, fmt.Errorf("witness vkey %q: its key id does not match its key", vkey)
	}
	return &cosigner{name, uint32(hash), ed25519.PublicKey(key[1:])}, nil
}

type policy struct {
	verifiers []note.Verifier
	minimum   int
}

func (p *policy) load(vkeys []string) error {
	for _, vkey := range vkeys {
		c, err := parseCosigner(vkey)
		if err != nil {
			return err
		}
		p.verifiers = append(p.verifiers, c)
	}
	if p.minimum < 0 {
		p.minimum = len(p.verifiers)
	}
	if p.minimum > len(p.verifiers) {
		return fmt.Errorf("-min-witnesses %d, but %d witnesses given", p.minimum, len(p.verifiers))
	}
	return nil
}

func (p *policy) check(cp *signed, where string) error {
	if len(cp.cosigners) < p.minimum {
		return fmt.Errorf("%s: cosigned by %d of %d witnesses (%s); the policy wants at least %d",
			where, len(cp.cosigners), len(p.verifiers), strings.Join(cp.cosigners, ", "), p.minimum)
	}
	return nil
}

func (p *policy) said(cp *signed) string {
	if len(p.verifiers) == 0 {
		return ""
	}
	return fmt.Sprintf("; cosigned by %s (%d of %d witnesses, at least %d required)",
		strings.Join(cp.cosigners, ", "), len(cp.cosigners), len(p.verifiers), p.minimum)
}

// --- The ledger's proof files ----------------------------------------------------------------

// leaf is what a leaf commits to; its bytes are its canonical JSON (keys sorted, no spaces),
// which encoding/json writes for these fields in this order.
type leaf struct {
	EventHash string `json:"event_hash"`
	Position  int64  `json:"position"`
	Stream    string `json:"stream"`
	Version   int64  `json:"version"`
}

type inclusion struct {
	Leaf     leaf     `json:"leaf"`
	Index    int64    `json:"index"`
	Size     int64    `json:"size"`
	Path     []string `json:"path"`
	path     tlog.RecordProof
	leafHash tlog.Hash
}

type consistencyProof struct {
	OldSize int64    `json:"old_size"`
	NewSize int64    `json:"new_size"`
	Path    []string `json:"path"`
	path    tlog.TreeProof
}

func hashes(where string, hexes []string) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(hexes))
	for i, h := range hexes {
		raw, err := hex.DecodeString(h)
		if err != nil || len(raw) != tlog.HashSize {
			return nil, fmt.Errorf("%s: path element %d is not a hash", where, i)
		}
		copy(out[i][:], raw)
	}
	return out, nil
}

func readJSON(path string, into any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	return nil
}

func readInclusion(path string) (*inclusion, error) {
	var p inclusion
	err := readJSON(path, &p)
	if err == nil {
		p.path, err = hashes(path, p.Path)
	}
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(p.Leaf)
	if err != nil {
		return nil, err
	}
	p.leafHash = tlog.RecordHash(data)
	return &p, nil
}

func readConsistency(path string) (*consistencyProof, error) {
	var p consistencyProof
	err := readJSON(path, &p)
	if err == nil {
		p.path, err = hashes(path, p.Path)
	}
	return &p, err
}

// --- Tiles (c2sp.org/tlog-tiles) ---------------------------------------------------------------

// tiles is a tlog.TileReader over HTTP: tlog names a tile tile/8/L/N, tlog-tiles tile/L/N. Tiles
// tlog has authenticated (SaveTiles) are kept, as a client's cache would keep them.
type tiles struct {
	base    string
	client  *http.Client
	fetched int
	saved   map[tlog.Tile][]byte
}

func (t *tiles) Height() int { return 8 }

func (t *tiles) ReadTiles(wanted []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(wanted))
	for i, tile := range wanted {
		if data, ok := t.saved[tile]; ok {
			out[i] = data
			continue
		}
		path := strings.Replace(tile.Path(), "tile/8/", "tile/", 1)
		body, err := t.get(path)
		if err != nil {
			return nil, err
		}
		if len(body) != tile.W*tlog.HashSize {
			return nil, fmt.Errorf("%s: %d bytes, not %d", path, len(body), tile.W*tlog.HashSize)
		}
		out[i] = body
	}
	return out, nil
}

func (t *tiles) SaveTiles(authenticated []tlog.Tile, data [][]byte) {
	for i, tile := range authenticated {
		t.saved[tile] = data[i]
	}
}

func (t *tiles) get(path string) ([]byte, error) {
	t.fetched++
	response, err := t.client.Get(t.base + "/" + path)
	if err != nil {
		return nil, err
	}
	defer response.Body.Close()
	body, err := io.ReadAll(io.LimitReader(response.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if response.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /%s: %s", path, response.Status)
	}
	return body, nil
}

func fromTiles(base string, log note.Verifier, p *policy, oldFile string, proofs []string, consistency string, every bool) (string, error) {
	reader := &tiles{base: base, client: &http.Client{Timeout: 30 * time.Second}, saved: map[tlog.Tile][]byte{}}
	raw, err := reader.get("checkpoint")
	if err != nil {
		return "", err
	}
	cp, err := openCheckpoint(raw, base+"/checkpoint", log, p)
	if err != nil {
		return "", err
	}
	hr := tlog.TileHashReader(cp.tree, reader)
	root, err := tlog.TreeHash(cp.tree.N, hr)
	if err != nil {
		return "", fmt.Errorf("tlog.TreeHash from tiles: %v", err)
	}
	if root != cp.tree.Hash {
		return "", errors.New("the tiles hash to another root than the checkpoint's")
	}
	done := []string{fmt.Sprintf("the tiles hash to the signed root of %d", cp.tree.N)}
	for _, file := range proofs {
		given, err := readInclusion(file)
		if err != nil {
			return "", err
		}
		if given.Size != cp.tree.N {
			return "", fmt.Errorf("%s: for a tree of %d, the checkpoint signs %d", file, given.Size, cp.tree.N)
		}
		rebuilt, err := tlog.ProveRecord(cp.tree.N, given.Index, hr)
		if err != nil {
			return "", fmt.Errorf("tlog.ProveRecord from tiles: %v", err)
		}
		if !sameHashes(rebuilt, given.path) {
			return "", fmt.Errorf("%s: the ledger's path is not the one the tiles give", file)
		}
		if err := tlog.CheckRecord(rebuilt, cp.tree.N, cp.tree.Hash, given.Index, given.leafHash); err != nil {
			return "", fmt.Errorf("%s: tlog.CheckRecord: %v", file, err)
		}
	}
	if len(proofs) > 0 {
		done = append(done, fmt.Sprintf("%d inclusion proofs rebuilt from tiles and checked", len(proofs)))
	}
	if every {
		for i := int64(0); i < cp.tree.N; i++ {
			leafHashes, err := hr.ReadHashes([]int64{tlog.StoredHashIndex(0, i)})
			if err != nil {
				return "", fmt.Errorf("leaf %d from tiles: %v", i, err)
			}
			proof, err := tlog.ProveRecord(cp.tree.N, i, hr)
			if err == nil {
				err = tlog.CheckRecord(proof, cp.tree.N, cp.tree.Hash, i, leafHashes[0])
			}
			if err != nil {
				return "", fmt.Errorf("leaf %d: %v", i, err)
			}
		}
		done = append(done, fmt.Sprintf("every leaf's inclusion proved from tiles (%d)", cp.tree.N))
	}
	if oldFile != "" {
		older, err := readCheckpoint(oldFile, log, p)
		if err != nil {
			return "", err
		}
		rebuilt, err := tlog.ProveTree(cp.tree.N, older.tree.N, hr)
		if err != nil {
			return "", fmt.Errorf("tlog.ProveTree from tiles: %v", err)
		}
		if consistency != "" {
			given, err := readConsistency(consistency)
			if err != nil {
				return "", err
			}
			if given.OldSize != older.tree.N || given.NewSize != cp.tree.N || !sameHashes(rebuilt, given.path) {
				return "", fmt.Errorf("%s: the ledger's consistency proof is not the one the tiles give", consistency)
			}
		}
		if err := tlog.CheckTree(rebuilt, cp.tree.N, cp.tree.Hash, older.tree.N, older.tree.Hash); err != nil {
			return "", fmt.Errorf("tlog.CheckTree: %v", err)
		}
		done = append(done, fmt.Sprintf("the tree of %d extends the tree of %d (proof from tiles)", cp.tree.N, older.tree.N))
	}
	return strings.Join(done, "; ") + fmt.Sprintf(" (%d tiles fetched)%s", reader.fetched-1, p.said(cp)), nil
}

func sameHashes(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
