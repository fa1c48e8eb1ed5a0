package storage

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func TestPlanObjects_SmallValuesOfANamespaceShareAPack(t *testing.T) {
	small := func(s string) []byte { return []byte(s) }
	big := bytes.Repeat([]byte("b"), maxPacked+1)
	nss := []string{"a.x", "a.x", "b", "a.x", "a.x"}
	bodies := [][]byte{small("one"), small("two"), small("alone"), big, small("three")}
	names, uploads := planObjects(nss, bodies)
	if len(uploads) != 3 {
		t.Fatalf("%d uploads, want 3 (a.x's pack, b's lone value, the big value)", len(uploads))
	}
	byName := map[string][]byte{}
	for _, u := range uploads {
		byName[u.name] = u.body
	}
	for i, name := range names {
		pack, off, n, ok := PackMember(name)
		switch i {
		case 0, 1, 4:
			if !ok || !strings.HasPrefix(pack, "a/x/_kv/") || !bytes.Equal(byName[pack][off:off+n], bodies[i]) {
				t.Errorf("body %d: name %q does not locate its bytes in a.x's pack", i, name)
			}
		default:
			if ok || !bytes.Equal(byName[name], bodies[i]) {
				t.Errorf("body %d: name %q, want an object of its own", i, name)
			}
		}
	}
	// The header lists every member, as GC reads it.
	pack, _, _, _ := PackMember(names[0])
	data := byName[pack]
	if string(data[:len(packMagic)]) != packMagic || binary.BigEndian.Uint32(data[len(packMagic):]) != 3 {
		t.Fatalf("pack header %q", data[:packHeader])
	}
	for j, i := range []int{0, 1, 4} {
		e := data[packHeader+packEntry*j:]
		if got := memberName(pack, int64(binary.BigEndian.Uint64(e)), int64(binary.BigEndian.Uint64(e[8:]))); got != names[i] {
			t.Errorf("header entry %d = %q, want %q", j, got, names[i])
		}
	}
}

func TestPlanObjects_PacksStayUnderTheirLimit(t *testing.T) {
	bodies := make([][]byte, 300) // 300 × 64 KiB: more than one pack holds
	nss := make([]string, len(bodies))
	for i := range bodies {
		bodies[i], nss[i] = bytes.Repeat([]byte{byte(i)}, maxPacked), "ns"
	}
	names, uploads := planObjects(nss, bodies)
	if len(uploads) != 2 {
		t.Fatalf("%d uploads, want 2 packs", len(uploads))
	}
	for _, u := range uploads {
		if len(u.body) > maxPackBytes+packHeader+packEntry*len(u.members) {
			t.Errorf("pack of %d bytes", len(u.body))
		}
	}
	if len(uploads[0].members)+len(uploads[1].members) != len(bodies) || names[0] == names[1] {
		t.Errorf("members %d + %d, names %q %q", len(uploads[0].members), len(uploads[1].members), names[0], names[1])
	}
}

func TestPackMember_OnlyPackMemberNames(t *testing.T) {
	for name, want := range map[string]bool{
		"a/_kv/x.pack#12+34": true,
		"a/_kv/x.pack#12+":   false,
		"a/_kv/x.pack#-1+3":  false,
		"a/_kv/x.ion":        false,
		"a/_kv/x.pack":       false,
		"a/_kv/x.ion#1+2":    false,
		"a/_kv/k.ion.abc":    false,
	} {
		if _, _, _, ok := PackMember(name); ok != want {
			t.Errorf("PackMember(%q) = %v, want %v", name, ok, want)
		}
	}
}
