// gocheck verifies govshare's C2SP checkpoint, tiles and a receipt with Go's
// golang.org/x/mod/sumdb/note and sumdb/tlog: an implementation govshare did not write.
//
//	gocheck <tile mirror dir> <log vkey> <receipt file>
//	gocheck -note <checkpoint file> <log vkey>   (a cosigned checkpoint: the log's signature
//	                                             verifies, the cosignature lines parse)
//
// The mirror holds "checkpoint" and the tiles at their C2SP paths (tile/<L>/<N>[.p/<W>],
// tile/entries/<N>[.p/<W>]), byte for byte as govshare served them.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const height = 8

type mirror struct{ dir string }

// c2spPath turns Go's "tile/8/L/N[.p/W]" into C2SP's "tile/L/N[.p/W]" (no height element;
// Go's "data" tiles are C2SP's entry bundles).
func c2spPath(t tlog.Tile) string {
	p := strings.Replace(t.Path(), fmt.Sprintf("tile/%d/", height), "tile/", 1)
	return strings.Replace(p, "tile/data/", "tile/entries/", 1)
}

func (m mirror) Height() int { return height }

func (m mirror) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, err := os.ReadFile(filepath.Join(m.dir, filepath.FromSlash(c2spPath(t))))
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (m mirror) SaveTiles([]tlog.Tile, [][]byte) {}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	os.Exit(1)
}

// openCheckpoint verifies the note signature with Go's note package and parses the body.
func openCheckpoint(data []byte, verifier note.Verifier) (origin string, tree tlog.Tree) {
	n, err := note.Open(data, note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint signature: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 {
		fail("checkpoint has %d lines", len(lines))
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("checkpoint size: %v", err)
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		fail("checkpoint root: %v", err)
	}
	return lines[0], tlog.Tree{N: size, Hash: root}
}

func main() {
	if len(os.Args) == 4 && os.Args[1] == "-note" {
		openNote(os.Args[2], os.Args[3])
		return
	}
	if len(os.Args) != 4 {
		fail("usage: gocheck <mirror dir> <log vkey> <receipt file>")
	}
	m := mirror{os.Args[1]}
	verifier, err := note.NewVerifier(os.Args[2])
	if err != nil {
		fail("vkey: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(m.dir, "checkpoint"))
	if err != nil {
		fail("%v", err)
	}
	origin, tree := openCheckpoint(data, verifier)

	// Every tile Go reads through TileHashReader is checked against the signed root.
	hr := tlog.TileHashReader(tree, m)
	root, err := tlog.TreeHash(tree.N, hr)
	if err != nil || root != tree.Hash {
		fail("tree hash from tiles: %v %v != %v", err, root, tree.Hash)
	}
	// Each entry of each bundle hashes to its leaf in the level-0 tiles.
	for start := int64(0); start < tree.N; start += 1 << height {
		t := tlog.TileForIndex(height, tlog.StoredHashIndex(0, start))
		t.L = -1
		t.W = int(min64(tree.N-start, 1<<height))
		bundles, err := m.ReadTiles([]tlog.Tile{t})
		if err != nil {
			fail("entry bundle %s: %v", c2spPath(t), err)
		}
		b := bundles[0]
		for i := int64(0); i < int64(t.W); i++ {
			if len(b) < 2 {
				fail("entry bundle %s truncated", c2spPath(t))
			}
			size := int(binary.BigEndian.Uint16(b))
			entry := b[2 : 2+size]
			b = b[2+size:]
			leaf, err := hr.ReadHashes([]int64{tlog.StoredHashIndex(0, start+i)})
			if err != nil || leaf[0] != tlog.RecordHash(entry) {
				fail("entry %d does not hash to its leaf: %v", start+i, err)
			}
			// And Go proves and checks every entry's inclusion from the tiles.
			proof, err := tlog.ProveRecord(tree.N, start+i, hr)
			if err != nil {
				fail("prove %d: %v", start+i, err)
			}
			if err := tlog.CheckRecord(proof, tree.N, tree.Hash, start+i, leaf[0]); err != nil {
				fail("check %d: %v", start+i, err)
			}
		}
		if len(b) != 0 {
			fail("entry bundle %s has trailing bytes", c2spPath(t))
		}
	}

	// The receipt: govshare's own inclusion proof, checked by Go against its checkpoint.
	receipt, err := os.ReadFile(os.Args[3])
	if err != nil {
		fail("%v", err)
	}
	head, cp, ok := bytes.Cut(receipt, []byte("\n\n"))
	if !ok {
		fail("receipt has no blank line")
	}
	rOrigin, rTree := openCheckpoint(cp, verifier)
	var index int64 = -1
	var entry []byte
	var proof tlog.RecordProof
	for _, line := range strings.Split(string(head), "\n")[1:] {
		switch {
		case strings.HasPrefix(line, "extra "):
			entry, err = base64.StdEncoding.DecodeString(line[6:])
		case strings.HasPrefix(line, "index "):
			index, err = strconv.ParseInt(line[6:], 10, 64)
		default:
			var h tlog.Hash
			h, err = tlog.ParseHash(line)
			proof = append(proof, h)
		}
		if err != nil {
			fail("receipt line %q: %v", line, err)
		}
	}
	if rOrigin != origin || index < 0 || entry == nil {
		fail("receipt for origin %q index %d", rOrigin, index)
	}
	if err := tlog.CheckRecord(proof, rTree.N, rTree.Hash, index, tlog.RecordHash(entry)); err != nil {
		fail("receipt inclusion proof: %v", err)
	}
	fmt.Printf("OK: %s size %d: signature, %d entries, tiles and receipt %d verified by Go\n",
		origin, tree.N, tree.N, index)
}

func min64(a, b int64) int64 {
	if a < b {
		return a
	}
	return b
}

// openNote checks a cosigned checkpoint: Go verifies the log's signature and parses every
// other signature line (the witnesses' cosignatures, whose type x/mod does not know).
func openNote(path, vkey string) {
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		fail("vkey: %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	n, err := note.Open(data, note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint: %v", err)
	}
	fmt.Printf("OK: %d verified, %d other signatures\n", len(n.Sigs), len(n.UnverifiedSigs))
}
