package sipgw

// G.711 (ITU-T G.711) μ-law and A-law, sample by sample: the classic segment
// algorithms, table-free (a few shifts per sample; a call carries 8,000 a second).

const ulawBias = 0x84

// ulawEncode compresses one 16-bit linear sample to μ-law.
func ulawEncode(s int16) byte {
	v := int32(s)
	sign := byte(0)
	if v < 0 {
		v = -v
		sign = 0x80
	}
	v = min(v, 32635) + ulawBias
	exp := byte(7)
	for mask := int32(0x4000); v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := byte(v>>(exp+3)) & 0x0f
	return ^(sign | exp<<4 | mant)
}

// ulawDecode expands one μ-law byte to a 16-bit linear sample.
func ulawDecode(u byte) int16 {
	u = ^u
	exp := (u >> 4) & 0x07
	v := (int32(u&0x0f)<<3 + ulawBias) << exp
	v -= ulawBias
	if u&0x80 != 0 {
		return int16(-v)
	}
	return int16(v)
}

// alawEncode compresses one 16-bit linear sample to A-law.
func alawEncode(s int16) byte {
	v := int32(s)
	sign := byte(0x80)
	if v < 0 {
		v = -v - 1
		sign = 0
	}
	v = min(v, 32767)
	var out byte
	if v < 256 {
		out = byte(v >> 4)
	} else {
		exp := byte(1)
		for t := v >> 8; t > 1; t >>= 1 {
			exp++
		}
		out = exp<<4 | byte(v>>(exp+3))&0x0f
	}
	return (out | sign) ^ 0x55
}

// alawDecode expands one A-law byte to a 16-bit linear sample.
func alawDecode(a byte) int16 {
	a ^= 0x55
	exp := (a >> 4) & 0x07
	mant := int32(a & 0x0f)
	var v int32
	if exp == 0 {
		v = mant<<4 + 8
	} else {
		v = (mant<<4 + 0x108) << (exp - 1)
	}
	if a&0x80 == 0 {
		return int16(-v)
	}
	return int16(v)
}

// g711Decode expands payload into pcm (which must be as long) by the codec's law.
func g711Decode(codec string, payload []byte, pcm []int16) {
	expand := ulawDecode
	if codec == codecPCMA {
		expand = alawDecode
	}
	for i, b := range payload {
		pcm[i] = expand(b)
	}
}

// g711Encode compresses pcm into payload (which must be as long) by the codec's law.
func g711Encode(codec string, pcm []int16, payload []byte) {
	compress := ulawEncode
	if codec == codecPCMA {
		compress = alawEncode
	}
	for i, v := range pcm {
		payload[i] = compress(v)
	}
}
