package fakecam

// A tiny H.264 encoder for test video, so the repository needs no ffmpeg:
// Baseline profile, CAVLC, 4:2:0. Intra pictures are flat grey
// (Intra16x16 DC prediction, no residual) with a PCM macroblock for a
// box; P pictures skip every macroblock except two I_PCM ones that move
// the box (new position) and repaint the background (old position). The
// result is a valid, decodable stream of a few hundred bytes per frame
// with visible motion.

// bitWriter writes an RBSP most significant bit first.
type bitWriter struct {
	buf  []byte
	nbit int // bits used in the last byte (0 = byte aligned)
}

func (w *bitWriter) bit(b uint) {
	if w.nbit == 0 {
		w.buf = append(w.buf, 0)
	}
	if b != 0 {
		w.buf[len(w.buf)-1] |= 0x80 >> w.nbit
	}
	w.nbit = (w.nbit + 1) % 8
}

func (w *bitWriter) bits(v uint64, n int) {
	for i := n - 1; i >= 0; i-- {
		w.bit(uint(v>>i) & 1)
	}
}

// ue writes an unsigned Exp-Golomb code.
func (w *bitWriter) ue(v uint64) {
	v++
	n := 0
	for x := v; x > 1; x >>= 1 {
		n++
	}
	w.bits(0, n)
	w.bits(v, n+1)
}

// se writes a signed Exp-Golomb code.
func (w *bitWriter) se(v int64) {
	if v > 0 {
		w.ue(uint64(2*v - 1))
	} else {
		w.ue(uint64(-2 * v))
	}
}

func (w *bitWriter) align0() {
	for w.nbit != 0 {
		w.bit(0)
	}
}

// trailing writes rbsp_trailing_bits.
func (w *bitWriter) trailing() {
	w.bit(1)
	w.align0()
}

// nalu adds the NAL header and emulation prevention bytes.
func nalu(header byte, rbsp []byte) []byte {
	out := []byte{header}
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

// Video describes the generated test video.
type Video struct {
	Width, Height int // multiples of 16
	FPS           int
	GOP           int // frames per IDR
	Frames        int
}

// DefaultVideo is what testdata/test.h264 holds: 3 s of 320x240 at 10 fps,
// one IDR per second.
var DefaultVideo = Video{Width: 320, Height: 240, FPS: 10, GOP: 10, Frames: 30}

func (v Video) sps() []byte {
	var w bitWriter
	w.bits(66, 8)   // profile_idc: Baseline
	w.bits(0xC0, 8) // constraint_set0_flag, constraint_set1_flag
	w.bits(30, 8)   // level_idc 3.0
	w.ue(0)         // seq_parameter_set_id
	w.ue(0)         // log2_max_frame_num_minus4: frame_num is 4 bits
	w.ue(2)         // pic_order_cnt_type 2: output order = decoding order
	w.ue(1)         // max_num_ref_frames
	w.bit(0)        // gaps_in_frame_num_value_allowed_flag
	w.ue(uint64(v.Width/16 - 1))
	w.ue(uint64(v.Height/16 - 1))
	w.bit(1) // frame_mbs_only_flag
	w.bit(1) // direct_8x8_inference_flag
	w.bit(0) // frame_cropping_flag
	w.bit(1) // vui_parameters_present_flag
	w.bit(0) // aspect_ratio_info_present_flag
	w.bit(0) // overscan_info_present_flag
	w.bit(0) // video_signal_type_present_flag
	w.bit(0) // chroma_loc_info_present_flag
	w.bit(1) // timing_info_present_flag
	w.bits(1, 32)
	w.bits(uint64(2*v.FPS), 32)
	w.bit(1) // fixed_frame_rate_flag
	w.bit(0) // nal_hrd_parameters_present_flag
	w.bit(0) // vcl_hrd_parameters_present_flag
	w.bit(0) // pic_struct_present_flag
	w.bit(1) // bitstream_restriction_flag
	w.bit(1) // motion_vectors_over_pic_boundaries_flag
	w.ue(0)  // max_bytes_per_pic_denom
	w.ue(0)  // max_bits_per_mb_denom
	w.ue(16) // log2_max_mv_length_horizontal
	w.ue(16) // log2_max_mv_length_vertical
	w.ue(0)  // max_num_reorder_frames: no frame waits for a later one
	w.ue(1)  // max_dec_frame_buffering
	w.trailing()
	return nalu(0x67, w.buf)
}

func pps() []byte {
	var w bitWriter
	w.ue(0)  // pic_parameter_set_id
	w.ue(0)  // seq_parameter_set_id
	w.bit(0) // entropy_coding_mode_flag: CAVLC
	w.bit(0) // bottom_field_pic_order_in_frame_present_flag
	w.ue(0)  // num_slice_groups_minus1
	w.ue(0)  // num_ref_idx_l0_default_active_minus1
	w.ue(0)  // num_ref_idx_l1_default_active_minus1
	w.bit(0) // weighted_pred_flag
	w.bits(0, 2)
	w.se(0)  // pic_init_qp_minus26
	w.se(0)  // pic_init_qs_minus26
	w.se(0)  // chroma_qp_index_offset
	w.bit(1) // deblocking_filter_control_present_flag
	w.bit(0) // constrained_intra_pred_flag
	w.bit(0) // redundant_pic_cnt_present_flag
	w.trailing()
	return nalu(0x68, w.buf)
}

// pcm writes an I_PCM macroblock's samples (after mb_type): a luma
// gradient in the box colour, flat chroma.
func pcm(w *bitWriter, luma, cb, cr byte) {
	w.align0() // pcm_alignment_zero_bit
	for y := 0; y < 16; y++ {
		for x := 0; x < 16; x++ {
			v := int(luma) + (x+y)*2 - 30
			w.bits(uint64(min(max(v, 16), 235)), 8)
		}
	}
	for i := 0; i < 64; i++ {
		w.bits(uint64(cb), 8)
	}
	for i := 0; i < 64; i++ {
		w.bits(uint64(cr), 8)
	}
}

const (
	bgLuma, bgCb, bgCr    = 128, 128, 128
	boxLuma, boxCb, boxCr = 200, 90, 160
)

// boxAt is the macroblock holding the box in frame i: it walks down the
// picture like a falling object, one macroblock row per frame.
func (v Video) boxAt(i int) int {
	mbw, mbh := v.Width/16, v.Height/16
	col := (i / mbh) % mbw
	row := i % mbh
	return row*mbw + col
}

func (v Video) idr(i, idrID int) []byte {
	mbw, mbh := v.Width/16, v.Height/16
	box := v.boxAt(i)
	var w bitWriter
	w.ue(0)                 // first_mb_in_slice
	w.ue(7)                 // slice_type: I (all slices)
	w.ue(0)                 // pic_parameter_set_id
	w.bits(0, 4)            // frame_num
	w.ue(uint64(idrID % 2)) // idr_pic_id: consecutive IDRs differ
	w.bit(0)                // no_output_of_prior_pics_flag
	w.bit(0)                // long_term_reference_flag
	w.se(0)                 // slice_qp_delta
	w.ue(1)                 // disable_deblocking_filter_idc
	isPCM := func(mb int) bool { return mb == box }
	for mb := 0; mb < mbw*mbh; mb++ {
		if isPCM(mb) {
			w.ue(25) // I_PCM
			pcm(&w, boxLuma, boxCb, boxCr)
			continue
		}
		w.ue(3) // I_16x16_2_0_0: DC prediction, no AC, no chroma
		w.ue(0) // intra_chroma_pred_mode: DC
		w.se(0) // mb_qp_delta
		// Intra16x16DCLevel: coeff_token for TotalCoeff=0, TrailingOnes=0.
		// nC comes from the left and upper neighbours; a PCM neighbour
		// counts as 16 coefficients, an Intra16x16 one without AC as 0.
		x, y := mb%mbw, mb/mbw
		var n, avail int
		if x > 0 {
			avail++
			if isPCM(mb - 1) {
				n += 16
			}
		}
		if y > 0 {
			avail++
			if isPCM(mb - mbw) {
				n += 16
			}
		}
		nC := n
		if avail == 2 {
			nC = (n + 1) >> 1
		}
		switch {
		case nC < 2:
			w.bits(1, 1)
		case nC < 4:
			w.bits(3, 2)
		case nC < 8:
			w.bits(15, 4)
		default:
			w.bits(3, 6)
		}
	}
	w.trailing()
	return nalu(0x65, w.buf)
}

func (v Video) p(i, frameNum int) []byte {
	mbw, mbh := v.Width/16, v.Height/16
	total := mbw * mbh
	prev, cur := v.boxAt(i-1), v.boxAt(i)
	var w bitWriter
	w.ue(0)                        // first_mb_in_slice
	w.ue(5)                        // slice_type: P (all slices)
	w.ue(0)                        // pic_parameter_set_id
	w.bits(uint64(frameNum%16), 4) // frame_num
	w.bit(0)                       // num_ref_idx_active_override_flag
	w.bit(0)                       // ref_pic_list_modification_flag_l0
	w.bit(0)                       // adaptive_ref_pic_marking_mode_flag
	w.se(0)                        // slice_qp_delta
	w.ue(1)                        // disable_deblocking_filter_idc
	type mbPCM struct {
		addr      int
		y, cb, cr byte
	}
	coded := []mbPCM{{prev, bgLuma, bgCb, bgCr}, {cur, boxLuma, boxCb, boxCr}}
	if prev > cur {
		coded[0], coded[1] = coded[1], coded[0]
	}
	if prev == cur {
		coded = coded[1:]
	}
	next := 0
	for _, c := range coded {
		w.ue(uint64(c.addr - next)) // mb_skip_run
		w.ue(30)                    // mb_type: I_PCM in a P slice (5 + 25)
		pcm(&w, c.y, c.cb, c.cr)
		next = c.addr + 1
	}
	if next < total {
		w.ue(uint64(total - next))
	}
	w.trailing()
	return nalu(0x41, w.buf)
}

// AccessUnits generates the video: one access unit (list of NAL units) per
// frame; IDR access units carry SPS and PPS in band, as cameras do.
func (v Video) AccessUnits() [][][]byte {
	var out [][][]byte
	sps, pp := v.sps(), pps()
	for i := 0; i < v.Frames; i++ {
		if i%v.GOP == 0 {
			out = append(out, [][]byte{sps, pp, v.idr(i, i/v.GOP)})
		} else {
			out = append(out, [][]byte{v.p(i, i%v.GOP)})
		}
	}
	return out
}

// Padding returns an SEI NAL unit (type 6, user data unregistered) of
// about n bytes. The simulator pads frames with it to reach a bitrate:
// decoders ignore it, but unlike filler data (type 12) the gateway keeps it,
// so it weighs in the ring buffer as real slice data would.
func Padding(n int) []byte {
	k := max(n-24, 0) // payload bytes after the UUID
	size := 16 + k
	b := []byte{0x06, 0x05} // NAL header, payloadType 5
	for ; size >= 255; size -= 255 {
		b = append(b, 0xff)
	}
	b = append(b, byte(size))
	b = append(b, "lintel-fakecam-p"...) // 16-byte UUID
	for i := 0; i < k; i++ {
		b = append(b, 0xaa) // never forms a start code
	}
	return append(b, 0x80) // rbsp_trailing_bits
}
