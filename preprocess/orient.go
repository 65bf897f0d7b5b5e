package preprocess

// transposeInto applies EXIF orientation o (2..8) to src, writing into dst
// (len 3*W*H) exactly as Pillow's ImageOps.exif_transpose does, and returns
// the new dimensions. Orientations outside 2..8 leave the image as it is and
// return ok == false.
func transposeInto(dst, src []uint8, w, h, o int) (nw, nh int, ok bool) {
	if o < 2 || o > 8 {
		return w, h, false
	}
	nw, nh = w, h
	if o >= 5 {
		nw, nh = h, w
	}
	// For each output pixel (x, y) the source pixel is (sx, sy) = base + x*dx + y*dy.
	// Written as a start offset and two strides in bytes over src.
	sw := 3 * w
	var start, dx, dy int
	switch o {
	case 2: // FLIP_LEFT_RIGHT: in(W-1-x, y)
		start, dx, dy = 3*(w-1), -3, sw
	case 3: // ROTATE_180: in(W-1-x, H-1-y)
		start, dx, dy = (h-1)*sw+3*(w-1), -3, -sw
	case 4: // FLIP_TOP_BOTTOM: in(x, H-1-y)
		start, dx, dy = (h-1)*sw, 3, -sw
	case 5: // TRANSPOSE: in(y, x)
		start, dx, dy = 0, sw, 3
	case 6: // ROTATE_270: in(y, H-1-x)
		start, dx, dy = (h-1)*sw, -sw, 3
	case 7: // TRANSVERSE: in(W-1-y, H-1-x)
		start, dx, dy = (h-1)*sw+3*(w-1), -sw, -3
	case 8: // ROTATE_90: in(W-1-y, x)
		start, dx, dy = 3*(w-1), sw, -3
	}
	for y := 0; y < nh; y++ {
		row := dst[y*3*nw : (y+1)*3*nw]
		s := start + y*dy
		for x := 0; x+2 < len(row); x += 3 {
			p := src[s : s+3 : s+3]
			row[x], row[x+1], row[x+2] = p[0], p[1], p[2]
			s += dx
		}
	}
	return nw, nh, true
}
