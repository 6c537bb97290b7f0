package main

// A minimal FlatBuffers builder and bounds-checked reader, hand-written so
// vbench has no third-party dependencies.
//
// The builder is a line-by-line port of the layout algorithm of the official
// runtimes (python/flatbuffers/builder.py, go/builder.go): data is written
// back to front with the same alignment (Prep) and vtable rules, so a table
// built with the same call sequence is byte-identical to what the Python
// reference codec (proto/python/vproto/messages.py) produces. The "canonical
// order" of those calls is implemented in messages.go.

import (
	"encoding/binary"
	"errors"
	"fmt"
)

type fbBuilder struct {
	buf       []byte // data lives in buf[head:]
	head      int
	minalign  int
	vtable    []int
	objectEnd int
	nested    bool
}

func newBuilder(size int) *fbBuilder {
	if size < 64 {
		size = 64
	}
	b := &fbBuilder{buf: make([]byte, size)}
	b.Reset()
	return b
}

func (b *fbBuilder) Reset() {
	b.head = len(b.buf)
	b.minalign = 1
	b.vtable = b.vtable[:0]
	b.nested = false
}

// Offset is the number of bytes written so far (measured from the end).
func (b *fbBuilder) Offset() int { return len(b.buf) - b.head }

func (b *fbBuilder) grow(need int) {
	for b.head < need {
		old := len(b.buf)
		nb := make([]byte, old*2)
		copy(nb[old:], b.buf)
		b.head += old
		b.buf = nb
	}
}

func (b *fbBuilder) pad(n int) {
	for i := 0; i < n; i++ {
		b.head--
		b.buf[b.head] = 0
	}
}

// Prep aligns so that after writing additional bytes, a value of `size`
// bytes is aligned to `size`.
func (b *fbBuilder) Prep(size, additional int) {
	if size > b.minalign {
		b.minalign = size
	}
	alignSize := (^(len(b.buf) - b.head + additional)) + 1
	alignSize &= size - 1
	b.grow(alignSize + size + additional)
	b.pad(alignSize)
}

func (b *fbBuilder) placeU8(v uint8) { b.head--; b.buf[b.head] = v }
func (b *fbBuilder) placeU16(v uint16) {
	b.head -= 2
	binary.LittleEndian.PutUint16(b.buf[b.head:], v)
}
func (b *fbBuilder) placeU32(v uint32) {
	b.head -= 4
	binary.LittleEndian.PutUint32(b.buf[b.head:], v)
}
func (b *fbBuilder) placeU64(v uint64) {
	b.head -= 8
	binary.LittleEndian.PutUint64(b.buf[b.head:], v)
}

func (b *fbBuilder) PrependU8(v uint8)   { b.Prep(1, 0); b.placeU8(v) }
func (b *fbBuilder) PrependU16(v uint16) { b.Prep(2, 0); b.placeU16(v) }
func (b *fbBuilder) PrependU32(v uint32) { b.Prep(4, 0); b.placeU32(v) }
func (b *fbBuilder) PrependU64(v uint64) { b.Prep(8, 0); b.placeU64(v) }

func (b *fbBuilder) PrependUOffsetTRelative(off int) {
	b.Prep(4, 0)
	if off > b.Offset() {
		panic("flatbuffers: offset points forward")
	}
	b.placeU32(uint32(b.Offset() - off + 4))
}

// CreateByteVector writes a [ubyte] vector and returns its offset.
func (b *fbBuilder) CreateByteVector(v []byte) int {
	if b.nested {
		panic("flatbuffers: nested vector")
	}
	b.Prep(4, len(v))
	b.head -= len(v)
	copy(b.buf[b.head:], v)
	b.placeU32(uint32(len(v)))
	return b.Offset()
}

// CreateString writes a NUL-terminated string vector and returns its offset.
func (b *fbBuilder) CreateString(s string) int {
	if b.nested {
		panic("flatbuffers: nested string")
	}
	b.Prep(4, len(s)+1)
	b.placeU8(0)
	b.head -= len(s)
	copy(b.buf[b.head:], s)
	b.placeU32(uint32(len(s)))
	return b.Offset()
}

func (b *fbBuilder) StartObject(numFields int) {
	if b.nested {
		panic("flatbuffers: nested object")
	}
	b.vtable = b.vtable[:0]
	for i := 0; i < numFields; i++ {
		b.vtable = append(b.vtable, 0)
	}
	b.objectEnd = b.Offset()
	b.nested = true
}

func (b *fbBuilder) slot(i int) { b.vtable[i] = b.Offset() }

func (b *fbBuilder) AddU8(slot int, v uint8)   { b.PrependU8(v); b.slot(slot) }
func (b *fbBuilder) AddU16(slot int, v uint16) { b.PrependU16(v); b.slot(slot) }
func (b *fbBuilder) AddU32(slot int, v uint32) { b.PrependU32(v); b.slot(slot) }
func (b *fbBuilder) AddU64(slot int, v uint64) { b.PrependU64(v); b.slot(slot) }
func (b *fbBuilder) AddOffset(slot int, off int) {
	b.PrependUOffsetTRelative(off)
	b.slot(slot)
}

// EndObject writes the vtable (never shared: one table per buffer here).
func (b *fbBuilder) EndObject() int {
	b.PrependU32(0) // soffset placeholder
	objectOffset := b.Offset()
	n := len(b.vtable)
	for n > 0 && b.vtable[n-1] == 0 {
		n--
	}
	for i := n - 1; i >= 0; i-- {
		off := 0
		if b.vtable[i] != 0 {
			off = objectOffset - b.vtable[i]
		}
		b.PrependU16(uint16(off))
	}
	b.PrependU16(uint16(objectOffset - b.objectEnd))
	b.PrependU16(uint16((n + 2) * 2))
	objectStart := len(b.buf) - objectOffset
	binary.LittleEndian.PutUint32(b.buf[objectStart:], uint32(int32(b.Offset()-objectOffset)))
	b.nested = false
	return objectOffset
}

// Finish writes the root offset and returns the finished buffer (aliases
// the builder's memory until the next Reset).
func (b *fbBuilder) Finish(root int) []byte {
	b.Prep(b.minalign, 4)
	b.PrependUOffsetTRelative(root)
	return b.buf[b.head:]
}

// ---- reader ---------------------------------------------------------------

var errMalformed = errors.New("malformed flatbuffer")

// fbTable is one validated table inside an untrusted body. An empty body
// reads as a table whose fields all hold their defaults.
type fbTable struct {
	buf          []byte
	pos, vt      int
	vtlen, objln int
}

func rootTable(buf []byte) (fbTable, error) {
	if len(buf) == 0 {
		return fbTable{}, nil
	}
	if len(buf) < 4 {
		return fbTable{}, fmt.Errorf("%w: body of %d bytes", errMalformed, len(buf))
	}
	return tableAt(buf, int(binary.LittleEndian.Uint32(buf)))
}

func tableAt(buf []byte, pos int) (fbTable, error) {
	n := len(buf)
	if pos < 0 || pos+4 > n {
		return fbTable{}, fmt.Errorf("%w: table offset %d outside %d bytes", errMalformed, pos, n)
	}
	vt := pos - int(int32(binary.LittleEndian.Uint32(buf[pos:])))
	if vt < 0 || vt+4 > n {
		return fbTable{}, fmt.Errorf("%w: vtable outside body", errMalformed)
	}
	vtlen := int(binary.LittleEndian.Uint16(buf[vt:]))
	objlen := int(binary.LittleEndian.Uint16(buf[vt+2:]))
	if vtlen < 4 || vtlen&1 != 0 || vt+vtlen > n || objlen < 4 || pos+objlen > n {
		return fbTable{}, fmt.Errorf("%w: bad vtable", errMalformed)
	}
	return fbTable{buf: buf, pos: pos, vt: vt, vtlen: vtlen, objln: objlen}, nil
}

// field returns the absolute position of a field of `size` bytes, or 0 if absent.
func (t fbTable) field(slot, size int) (int, error) {
	if t.buf == nil {
		return 0, nil
	}
	o := 4 + 2*slot
	if o+2 > t.vtlen {
		return 0, nil
	}
	off := int(binary.LittleEndian.Uint16(t.buf[t.vt+o:]))
	if off == 0 {
		return 0, nil
	}
	if off < 4 || off+size > t.objln {
		return 0, fmt.Errorf("%w: field %d outside its table", errMalformed, slot)
	}
	return t.pos + off, nil
}

func (t fbTable) U8(slot int) (uint8, error) {
	p, err := t.field(slot, 1)
	if p == 0 || err != nil {
		return 0, err
	}
	return t.buf[p], nil
}

func (t fbTable) U16(slot int, def uint16) (uint16, error) {
	p, err := t.field(slot, 2)
	if p == 0 || err != nil {
		return def, err
	}
	return binary.LittleEndian.Uint16(t.buf[p:]), nil
}

func (t fbTable) U32(slot int, def uint32) (uint32, error) {
	p, err := t.field(slot, 4)
	if p == 0 || err != nil {
		return def, err
	}
	return binary.LittleEndian.Uint32(t.buf[p:]), nil
}

func (t fbTable) U64(slot int, def uint64) (uint64, error) {
	p, err := t.field(slot, 8)
	if p == 0 || err != nil {
		return def, err
	}
	return binary.LittleEndian.Uint64(t.buf[p:]), nil
}

// Bytes returns a [ubyte] or string field (aliasing the buffer), nil if absent.
func (t fbTable) Bytes(slot int) ([]byte, error) {
	p, err := t.field(slot, 4)
	if p == 0 || err != nil {
		return nil, err
	}
	v := p + int(binary.LittleEndian.Uint32(t.buf[p:]))
	if v < p || v+4 > len(t.buf) {
		return nil, fmt.Errorf("%w: field %d points outside the body", errMalformed, slot)
	}
	n := int(binary.LittleEndian.Uint32(t.buf[v:]))
	if n < 0 || v+4+n > len(t.buf) {
		return nil, fmt.Errorf("%w: vector in field %d runs past the body", errMalformed, slot)
	}
	return t.buf[v+4 : v+4+n], nil
}
