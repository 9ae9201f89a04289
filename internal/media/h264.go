package media

// A minimal H.264 encoder: Constrained Baseline profile, CAVLC, one slice
// per picture. Key pictures (IDR) code every macroblock as I_PCM, the
// samples themselves, so no transform, prediction or entropy coding of
// residuals is needed; the pictures in between are P slices whose every
// macroblock is skipped (a copy of the reference). Every decoder handles
// both, and the result is a real, standard stream a browser's
// MediaSource decodes.

// bitWriter writes an RBSP most significant bit first.
type bitWriter struct {
	buf  []byte
	cur  byte
	nbit uint // bits used in cur
}

func (w *bitWriter) bit(b uint32) {
	w.cur = w.cur<<1 | byte(b&1)
	w.nbit++
	if w.nbit == 8 {
		w.buf = append(w.buf, w.cur)
		w.cur, w.nbit = 0, 0
	}
}

// u writes v in n bits (u(n) in the standard).
func (w *bitWriter) u(n uint, v uint32) {
	for i := int(n) - 1; i >= 0; i-- {
		w.bit(v >> uint(i))
	}
}

// ue writes v as unsigned Exp-Golomb (ue(v)).
func (w *bitWriter) ue(v uint32) {
	x := v + 1
	n := uint(0)
	for t := x; t > 1; t >>= 1 {
		n++
	}
	w.u(n, 0)
	w.u(n+1, x)
}

// se writes v as signed Exp-Golomb (se(v)).
func (w *bitWriter) se(v int32) {
	if v <= 0 {
		w.ue(uint32(-2 * v))
	} else {
		w.ue(uint32(2*v - 1))
	}
}

// align pads with zero bits to a byte boundary (pcm_alignment_zero_bit).
func (w *bitWriter) align() {
	for w.nbit != 0 {
		w.bit(0)
	}
}

// bytes appends whole bytes; the writer must be aligned.
func (w *bitWriter) bytes(b []byte) { w.buf = append(w.buf, b...) }

// trailing writes rbsp_trailing_bits and returns the RBSP.
func (w *bitWriter) trailing() []byte {
	w.bit(1)
	w.align()
	return w.buf
}

// NAL unit types and reference priorities used here.
const (
	nalSlice = 1
	nalIDR   = 5
	nalSPS   = 7
	nalPPS   = 8
)

// nal wraps an RBSP as a NAL unit: the header byte, then the payload with
// emulation prevention (a 0x03 after two zero bytes that a 0x00–0x03
// follows), so no start code can appear inside it.
func nal(refIdc, typ byte, rbsp []byte) []byte {
	out := make([]byte, 0, len(rbsp)+len(rbsp)/64+1)
	out = append(out, refIdc<<5|typ)
	zeros := 0
	for _, b := range rbsp {
		if zeros >= 2 && b <= 3 {
			out = append(out, 3)
			zeros = 0
		}
		out = append(out, b)
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}

// Stream parameters shared by the SPS, the PPS and every slice.
const (
	profileBaseline = 66
	// constraint_set0 and constraint_set1: Constrained Baseline.
	constraintFlags = 0xC0
	level30         = 30
	log2MaxFrameNum = 4 // frame_num counts 0..15 within a GOP
)

// sps is the sequence parameter set for a picture of wMB×hMB macroblocks.
func sps(wMB, hMB int) []byte {
	var w bitWriter
	w.u(8, profileBaseline)
	w.u(8, constraintFlags)
	w.u(8, level30)
	w.ue(0)                   // seq_parameter_set_id
	w.ue(log2MaxFrameNum - 4) // log2_max_frame_num_minus4
	// pic_order_cnt_type 2: output order is decoding order (no B
	// pictures), which needs every picture to be a reference.
	w.ue(2)
	w.ue(1) // max_num_ref_frames
	w.u(1, 0)
	w.ue(uint32(wMB - 1)) // pic_width_in_mbs_minus1
	w.ue(uint32(hMB - 1)) // pic_height_in_map_units_minus1
	w.u(1, 1)             // frame_mbs_only_flag
	w.u(1, 1)             // direct_8x8_inference_flag
	w.u(1, 0)             // frame_cropping_flag
	w.u(1, 0)             // vui_parameters_present_flag
	return nal(3, nalSPS, w.trailing())
}

// pps is the picture parameter set: CAVLC, one slice group, deblocking
// under slice control (the slices turn it off: PCM pictures are exact).
func pps() []byte {
	var w bitWriter
	w.ue(0)   // pic_parameter_set_id
	w.ue(0)   // seq_parameter_set_id
	w.u(1, 0) // entropy_coding_mode_flag: CAVLC
	w.u(1, 0) // bottom_field_pic_order_in_frame_present_flag
	w.ue(0)   // num_slice_groups_minus1
	w.ue(0)   // num_ref_idx_l0_default_active_minus1
	w.ue(0)   // num_ref_idx_l1_default_active_minus1
	w.u(1, 0) // weighted_pred_flag
	w.u(2, 0) // weighted_bipred_idc
	w.se(0)   // pic_init_qp_minus26
	w.se(0)   // pic_init_qs_minus26
	w.se(0)   // chroma_qp_index_offset
	w.u(1, 1) // deblocking_filter_control_present_flag
	w.u(1, 0) // constrained_intra_pred_flag
	w.u(1, 0) // redundant_pic_cnt_present_flag
	return nal(3, nalPPS, w.trailing())
}

// picture is a 4:2:0 picture in 8-bit samples.
type picture struct {
	w, h   int // in samples, multiples of 16
	y      []byte
	cb, cr []byte
}

func newPicture(w, h int) *picture {
	return &picture{w: w, h: h, y: make([]byte, w*h), cb: make([]byte, w*h/4), cr: make([]byte, w*h/4)}
}

// idrSlice codes p as an IDR picture of I_PCM macroblocks; idrID tells
// consecutive IDR pictures apart (idr_pic_id).
func idrSlice(p *picture, idrID uint32) []byte {
	wMB, hMB := p.w/16, p.h/16
	var w bitWriter
	w.buf = make([]byte, 0, wMB*hMB*390+16)
	w.ue(0)                 // first_mb_in_slice
	w.ue(7)                 // slice_type: I (all slices of the picture)
	w.ue(0)                 // pic_parameter_set_id
	w.u(log2MaxFrameNum, 0) // frame_num
	w.ue(idrID)             // idr_pic_id
	w.u(1, 0)               // no_output_of_prior_pics_flag
	w.u(1, 0)               // long_term_reference_flag
	w.se(0)                 // slice_qp_delta
	w.ue(1)                 // disable_deblocking_filter_idc
	for my := 0; my < hMB; my++ {
		for mx := 0; mx < wMB; mx++ {
			w.ue(25) // mb_type: I_PCM
			w.align()
			for y := 0; y < 16; y++ {
				row := (my*16+y)*p.w + mx*16
				w.bytes(p.y[row : row+16])
			}
			for _, plane := range [][]byte{p.cb, p.cr} {
				for y := 0; y < 8; y++ {
					row := (my*8+y)*(p.w/2) + mx*8
					w.bytes(plane[row : row+8])
				}
			}
		}
	}
	return nal(3, nalIDR, w.trailing())
}

// skipSlice codes a P picture that repeats its reference: every
// macroblock skipped. frameNum counts the pictures since the IDR.
func skipSlice(wMB, hMB int, frameNum uint32) []byte {
	var w bitWriter
	w.ue(0) // first_mb_in_slice
	w.ue(5) // slice_type: P (all slices of the picture)
	w.ue(0) // pic_parameter_set_id
	w.u(log2MaxFrameNum, frameNum)
	w.u(1, 0)               // num_ref_idx_active_override_flag
	w.u(1, 0)               // ref_pic_list_modification_flag_l0
	w.u(1, 0)               // adaptive_ref_pic_marking_mode_flag: sliding window
	w.se(0)                 // slice_qp_delta
	w.ue(1)                 // disable_deblocking_filter_idc
	w.ue(uint32(wMB * hMB)) // mb_skip_run: the whole picture
	return nal(2, nalSlice, w.trailing())
}
