package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/rs/xid"
)

// A pack is one object holding the small values of a batch write (SetMany,
// Import) of one namespace, so a batch of 500 values costs one upload
// instead of 500. It is a header listing its members, then their ION
// objects back to back. Each member has a name of its own,
// <pack>#<offset>+<length>, which the metadata holds as any object name
// (unique per write, so history, the change feed and the unique indexes see
// no difference); a Bucket's Get reads a member as that range of its pack.
// The pack is deleted once none of its members is referenced.
const (
	packMagic  = "KVFLOWPK"
	packHeader = 8 + 4 // the magic, then the member count
	packEntry  = 16    // a member's offset and length
	// maxPacked is the largest value a pack takes; larger ones keep an
	// object of their own.
	maxPacked = 64 << 10
	// maxPackBytes bounds a pack's values.
	maxPackBytes = 16 << 20
)

// PackMember splits a member's name into its pack's name and its byte range;
// ok is false for any other name.
func PackMember(name string) (pack string, off, n int64, ok bool) {
	i := strings.LastIndexByte(name, '#')
	if i < 0 || !strings.HasSuffix(name[:i], ".pack") {
		return "", 0, 0, false
	}
	o, l, found := strings.Cut(name[i+1:], "+")
	off, err1 := strconv.ParseInt(o, 10, 64)
	n, err2 := strconv.ParseInt(l, 10, 64)
	if !found || err1 != nil || err2 != nil || off < 0 || n < 0 {
		return "", 0, 0, false
	}
	return name[:i], off, n, true
}

func memberName(pack string, off, n int64) string {
	return pack + "#" + strconv.FormatInt(off, 10) + "+" + strconv.FormatInt(n, 10)
}

// packName is a fresh pack name of namespace ns, beside its value objects.
func packName(ns string) string {
	return strings.ReplaceAll(ns, ".", "/") + "/_kv/" + xid.New().String() + ".pack"
}

// ObjectOf is the object in the bucket that holds name: its pack, or itself.
func ObjectOf(name string) string {
	if pack, _, _, ok := PackMember(name); ok {
		return pack
	}
	return name
}

// upload is one object a batch write puts: a value's own, or a pack of
// several (members lists the bodies it holds).
type upload struct {
	name    string
	body    []byte
	members []int
}

// planObjects names the objects of a batch's bodies (nss[i] is body i's
// namespace): the small bodies of a namespace share packs of up to
// maxPackBytes, and the others, and one left alone in a pack, get an object
// each. names[i] is body i's object name for its metadata.
func planObjects(nss []string, bodies [][]byte) (names []string, uploads []upload) {
	names = make([]string, len(bodies))
	var order []string
	groups := map[string][][]int{} // namespace → packs of body indexes
	last := map[string]int{}       // bytes in a namespace's last pack
	for i, b := range bodies {
		if len(b) > maxPacked {
			continue
		}
		ns := nss[i]
		g := groups[ns]
		if len(g) == 0 || last[ns]+len(b) > maxPackBytes {
			if len(g) == 0 {
				order = append(order, ns)
			}
			g, last[ns] = append(g, nil), 0
		}
		g[len(g)-1] = append(g[len(g)-1], i)
		groups[ns], last[ns] = g, last[ns]+len(b)
	}
	for _, ns := range order {
		for _, idx := range groups[ns] {
			if len(idx) > 1 {
				uploads = append(uploads, pack(ns, idx, bodies, names))
			}
		}
	}
	for i, b := range bodies {
		if names[i] == "" {
			names[i] = ObjectName(nss[i])
			uploads = append(uploads, upload{name: names[i], body: b, members: []int{i}})
		}
	}
	return names, uploads
}

func packSize(bodies [][]byte, idx []int) int {
	n := 0
	for _, i := range idx {
		n += len(bodies[i])
	}
	return n
}

// pack lays out the bodies idx of namespace ns as one pack and names them.
func pack(ns string, idx []int, bodies [][]byte, names []string) upload {
	name := packName(ns)
	off := int64(packHeader + packEntry*len(idx))
	data := make([]byte, off, off+int64(packSize(bodies, idx)))
	copy(data, packMagic)
	binary.BigEndian.PutUint32(data[len(packMagic):], uint32(len(idx)))
	for j, i := range idx {
		n := int64(len(bodies[i]))
		e := data[packHeader+packEntry*j:]
		binary.BigEndian.PutUint64(e, uint64(off))
		binary.BigEndian.PutUint64(e[8:], uint64(n))
		names[i] = memberName(name, off, n)
		data = append(data, bodies[i]...)
		off += n
	}
	return upload{name: name, body: data, members: idx}
}

// errBadPack is a pack whose header cannot be read: one still uploading
// into a local file, or damaged. It is left alone.
var errBadPack = errors.New("not a pack header")

// packMembers reads the names of a pack's members from its header;
// fs.ErrNotExist when the pack is gone.
func (s *Store) packMembers(ctx context.Context, pack string) ([]string, error) {
	head, err := s.readRange(ctx, pack, 0, packHeader)
	if err != nil {
		return nil, err
	}
	if string(head[:len(packMagic)]) != packMagic {
		return nil, errBadPack
	}
	count := int64(binary.BigEndian.Uint32(head[len(packMagic):]))
	if count < 2 || count > MaxBatch { // a batch write's bound: a damaged header allocates nothing large
		return nil, errBadPack
	}
	table, err := s.readRange(ctx, pack, packHeader, packEntry*count)
	if err != nil {
		return nil, err
	}
	names := make([]string, count)
	for j := range names {
		e := table[packEntry*j:]
		names[j] = memberName(pack, int64(binary.BigEndian.Uint64(e)), int64(binary.BigEndian.Uint64(e[8:])))
	}
	return names, nil
}

// readRange reads n bytes of an object at off, all of them or errBadPack.
func (s *Store) readRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	rc, err := s.bucket.Get(ctx, memberName(name, off, n))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(rc, b); errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return nil, errBadPack
	} else if err != nil {
		return nil, err
	}
	return b, nil
}

// packsOf reads the members of the packs of names (member or pack names),
// by pack. A pack that is gone or whose header cannot be read is left out.
func (s *Store) packsOf(ctx context.Context, names []string) (map[string][]string, error) {
	packs := map[string][]string{}
	tried := map[string]bool{}
	for _, name := range names {
		pack := ObjectOf(name)
		if tried[pack] {
			continue
		}
		tried[pack] = true
		members, err := s.packMembers(ctx, pack)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errBadPack) {
			continue
		} else if err != nil {
			return nil, unavailable(err, "Cannot collect garbage: the object store is unreachable")
		}
		packs[pack] = members
	}
	return packs, nil
}

// deleteUnused deletes those of packs none of whose members is referenced,
// except by a name in collected (queued garbage being collected now), and
// returns how many it deleted and the packs it kept.
func (s *Store) deleteUnused(ctx context.Context, packs map[string][]string, collected map[string]bool) (int, map[string][]string, error) {
	var all []string
	for _, members := range packs {
		all = append(all, members...)
	}
	ref, err := s.referenced(ctx, all)
	if err != nil {
		return 0, nil, err
	}
	var drop []string
	kept := map[string][]string{}
	for pack, members := range packs {
		if slices.ContainsFunc(members, func(m string) bool { return ref[m] && !collected[m] }) {
			kept[pack] = members
		} else {
			drop = append(drop, pack)
		}
	}
	return len(drop), kept, s.deleteObjects(ctx, drop)
}

// referenced asks the index which of names are referenced.
func (s *Store) referenced(ctx context.Context, names []string) (map[string]bool, error) {
	ref, err := s.index.Referenced(ctx, names)
	if err != nil {
		return nil, unavailable(err, "Cannot collect garbage: the database is unreachable")
	}
	return ref, nil
}

// dropWritten deletes the uploaded objects of a batch write's names ("" for
// one not uploaded) that no kept write points to: all of them when keep is
// nil, and a pack only when none of its members is kept.
func (s *Store) dropWritten(ctx context.Context, names []string, keep []bool) {
	kept := map[string]bool{}
	for i, name := range names {
		if name != "" {
			obj := ObjectOf(name)
			kept[obj] = kept[obj] || (keep != nil && keep[i])
		}
	}
	for obj, k := range kept {
		if !k {
			s.dropObject(ctx, obj)
		}
	}
}
