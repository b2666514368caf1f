// kiln-pipeline/2 on the GPU: the integer kernels of nftgen/RECIPE.md §9 as compute shaders.
//
// Every value is an i32 or u32 and every operation is the CPU's (nftgen/src/model/sprite_q/ops.rs)
// written with 32-bit arithmetic: no floats, no 64-bit integers, no atomics. Sums are of integers,
// so their order does not matter. WGSL integer arithmetic wraps, as the CPU's wrapping adds do;
// shifts by 32 or more are taken modulo 32 in WGSL, so every shift amount here is checked first.
//
// Bindings (one layout for every entry point):
//   params: the model, uploaded once (int8 weights packed four to a word, biases, requantization
//           multipliers and shifts, norms, tables), read only;
//   work:   activations, the sampler state and the per-step values, read and written;
//   a:      this dispatch's arguments (offsets into params and work, sizes), a uniform slot.

@group(0) @binding(0) var<storage, read> params: array<i32>;
@group(0) @binding(1) var<storage, read_write> work: array<i32>;
@group(0) @binding(2) var<uniform> a: Args;

// The meaning of each field is the entry point's (see the Rust side, gpu/plan.rs).
struct Args {
    n0: u32, n1: u32, n2: u32, n3: u32,
    o0: u32, o1: u32, o2: u32, o3: u32,
    o4: u32, o5: u32, o6: u32, o7: u32,
    i0: i32, i1: i32, i2: i32, i3: i32,
}

const ACT_MAX: i32 = 8388607;           // 2^23 − 1
const SAMPLE_MAX: i32 = 134217727;      // 2^27 − 1
const I32_MAX: i32 = 2147483647;
const WIDE: i32 = 536870912;            // 2^29
const LN_EPS_Q24: u32 = 168u;
const EXP_LAST: i32 = 4096;             // entries of the exp table − 1

// The per-step values in work (written by the host before each step): timestep, A, B, G.
const STEP_T: u32 = 0u;
const STEP_A: u32 = 1u;
const STEP_B: u32 = 2u;
const STEP_G: u32 = 3u;

// ---------------------------------------------------------------------------------------------
// Scalar primitives (ops.rs)

// floor((v + 2^(s−1)) / 2^s); s = 0 is the identity.
fn rshift_round(v: i32, s: u32) -> i32 {
    if (s == 0u) {
        return v;
    }
    if (s >= 31u) {
        if (s == 31u && v >= 1073741824) {
            return 1;
        }
        return 0;
    }
    return (v + (1 << (s - 1u))) >> s;
}

// clamp(shift_sat(v, amount), ±lim) for 0 ≤ lim.
fn shift_clamp(v: i32, amount: i32, lim: i32) -> i32 {
    if (amount >= 0) {
        if (v == 0) {
            return 0;
        }
        if (amount >= 31) {
            return select(-lim, lim, v > 0);
        }
        let m = lim >> u32(amount);
        if (v > m) {
            return lim;
        }
        if (v < -m) {
            return -lim;
        }
        return v << u32(amount);
    }
    if (amount > -31) {
        let s = u32(-amount);
        return clamp((v + (1 << (s - 1u))) >> s, -lim, lim);
    }
    return clamp(rshift_round(v, u32(-amount)), -lim, lim);
}

// floor((x·m + 2^(s−1)) / 2^s) on the exact 64-bit product, saturated to ±(2^31 − 1), with
// 16-bit limbs (ops::mul_shift_limbs; 0 ≤ s ≤ 62).
fn mul_shift(x: i32, m: i32, s: u32) -> i32 {
    let neg = (x < 0) != (m < 0);
    let ua = u32(abs(x));
    let um = u32(abs(m));
    let a0 = ua & 0xFFFFu;
    let a1 = ua >> 16u;
    let m0 = um & 0xFFFFu;
    let m1 = um >> 16u;
    let p00 = a0 * m0;
    let p01 = a0 * m1;
    let p10 = a1 * m0;
    let p11 = a1 * m1;
    let mid = (p00 >> 16u) + (p01 & 0xFFFFu) + (p10 & 0xFFFFu);
    var lo = (p00 & 0xFFFFu) | (mid << 16u);
    var hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
    if (neg && (hi | lo) != 0u) {
        lo = ~lo + 1u;
        hi = ~hi + select(0u, 1u, lo == 0u);
    }
    if (s != 0u) {
        if (s - 1u < 32u) {
            let c = 1u << (s - 1u);
            let nlo = lo + c;
            hi = hi + select(0u, 1u, nlo < lo);
            lo = nlo;
        } else {
            hi = hi + (1u << (s - 33u));
        }
    }
    let shi = bitcast<i32>(hi);
    var rhi: i32;
    var rlo: u32;
    if (s == 0u) {
        rhi = shi;
        rlo = lo;
    } else if (s < 32u) {
        rhi = shi >> s;
        rlo = (lo >> s) | (hi << (32u - s));
    } else {
        rhi = shi >> 31u;
        rlo = bitcast<u32>(shi >> (s - 32u));
    }
    let fits = (rhi == 0 && rlo <= 0x7FFFFFFFu) || (rhi == -1 && rlo > 0x7FFFFFFFu);
    if (fits) {
        if (rlo == 0x80000000u) {
            return -I32_MAX;
        }
        return bitcast<i32>(rlo);
    }
    if (rhi < 0) {
        return -I32_MAX;
    }
    return I32_MAX;
}

fn bit_len(v: u32) -> i32 {
    return 32 - i32(countLeadingZeros(v));
}

// floor((x + floor(b/2)) / b) for b > 0.
fn div_round(x: i32, b: i32) -> i32 {
    let v = x + b / 2;
    var q = v / b;
    if (v % b != 0 && v < 0) {
        q = q - 1;
    }
    return q;
}

fn isqrt(n: u32) -> u32 {
    var rem = n;
    var root = 0u;
    var bit = 1u << 30u;
    while (bit > rem) {
        bit = bit >> 2u;
    }
    while (bit != 0u) {
        if (rem >= root + bit) {
            rem = rem - (root + bit);
            root = (root >> 1u) + bit;
        } else {
            root = root >> 1u;
        }
        bit = bit >> 2u;
    }
    return root;
}

fn sat_act(v: i32) -> i32 {
    return clamp(v, -ACT_MAX, ACT_MAX);
}

// clamp(shift(v, −e), ±127) (ops::quantize_i8_with without the flip).
fn quantize_i8(v: i32, e: i32) -> i32 {
    if (e > 0) {
        return clamp((v + (1 << u32(e - 1))) >> u32(e), -127, 127);
    }
    return clamp(v << u32(-e), -127, 127);
}

// SiLU of a Q12 value through the table at params[table].
fn silu(v: i32, table: u32) -> i32 {
    let i = rshift_round(v, 4u);
    if (i >= 4096) {
        return v;
    }
    if (i < -4096) {
        return 0;
    }
    return params[table + u32(i + 4096)];
}

fn pack4(q0: i32, q1: i32, q2: i32, q3: i32) -> u32 {
    return (u32(q0) & 0xFFu) | ((u32(q1) & 0xFFu) << 8u) | ((u32(q2) & 0xFFu) << 16u)
        | ((u32(q3) & 0xFFu) << 24u);
}

// ---------------------------------------------------------------------------------------------
// Linear layers (§9.4)

// Dynamic int8 quantization of rows. id.x: row (< n0), id.y: group (< n2).
// n1 = k values per row; o0 = source, o1 = source row stride, o2 = destination words
// (k/4 rounded up per row, zero-padded), o3 = exponents;
// o4, o5, o6 = the source, destination and exponent steps between groups.
@compute @workgroup_size(64)
fn quantize_rows(@builtin(global_invocation_id) id: vec3<u32>) {
    let r = id.x;
    if (r >= a.n0 || id.y >= a.n2) {
        return;
    }
    let k = a.n1;
    let kw = (k + 3u) / 4u;
    let src = a.o0 + id.y * a.o4 + r * a.o1;
    var m = 0u;
    for (var i = 0u; i < k; i++) {
        m = max(m, u32(abs(work[src + i])));
    }
    var e = 0;
    if (m != 0u) {
        e = bit_len(m) - 7;
    }
    let dst = a.o2 + id.y * a.o5 + r * kw;
    for (var w = 0u; w < kw; w++) {
        var q = array<i32, 4>(0, 0, 0, 0);
        for (var b = 0u; b < 4u; b++) {
            let i = 4u * w + b;
            if (i < k) {
                q[b] = quantize_i8(work[src + i], e);
            }
        }
        work[dst + w] = bitcast<i32>(pack4(q[0], q[1], q[2], q[3]));
    }
    work[a.o3 + id.y * a.o6 + r] = e;
}

// One output of a linear layer. id.x: output channel (< n2), id.y: row (< n0).
// n1 = words per row (k/4); o0 = quantized rows (words), o1 = their exponents, o2 = weights in
// params (word-major, [words][out]: neighbouring outputs read neighbouring words), o3 = bias,
// o4 = mult, o5 = shift (params), o6 = destination ([rows][out]); i0 = the output limit.
@compute @workgroup_size(64)
fn linear(@builtin(global_invocation_id) id: vec3<u32>) {
    let o = id.x;
    let r = id.y;
    if (o >= a.n2 || r >= a.n0) {
        return;
    }
    let kw = a.n1;
    let x = a.o0 + r * kw;
    let w = a.o2 + o;
    var acc = 0;
    for (var i = 0u; i < kw; i++) {
        acc = acc + dot4I8Packed(bitcast<u32>(work[x + i]), bitcast<u32>(params[w + i * a.n2]));
    }
    let e = work[a.o1 + r];
    let y = mul_shift(acc, params[a.o4 + o], u32(params[a.o5 + o] - e));
    work[a.o6 + r * a.n2 + o] = clamp(clamp(y, -WIDE, WIDE) + params[a.o3 + o], -a.i0, a.i0);
}

// ---------------------------------------------------------------------------------------------
// Element-wise steps of the network (§9.7)

// Patchify the sample. id.x: value within a token (< n1 = C·p·p), id.y: token (< n0).
// n2 = patch side p, n3 = grid width; o0 = sample [C, H, W], o1 = patches [tokens, C·p·p];
// i0 = image width, i1 = image height.
@compute @workgroup_size(64)
fn patchify(@builtin(global_invocation_id) id: vec3<u32>) {
    let e = id.x;
    let tok = id.y;
    if (e >= a.n1 || tok >= a.n0) {
        return;
    }
    let p = a.n2;
    let gx = tok % a.n3;
    let gy = tok / a.n3;
    let ch = e / (p * p);
    let py = (e / p) % p;
    let px = e % p;
    let w = u32(a.i0);
    let h = u32(a.i1);
    work[a.o1 + tok * a.n1 + e] = work[a.o0 + (ch * h + gy * p + py) * w + gx * p + px];
}

// The embedded patches plus positions, copied to both rows. id.x: channel (< n1 = d),
// id.y: token (< n0). n2 = grid width, n3 = position table's grid width; o0 = embedded
// patches [tokens, d], o1 = positions (params), o2 = residual stream [2, tokens, d].
@compute @workgroup_size(64)
fn add_positions(@builtin(global_invocation_id) id: vec3<u32>) {
    let j = id.x;
    let tok = id.y;
    if (j >= a.n1 || tok >= a.n0) {
        return;
    }
    let d = a.n1;
    let gx = tok % a.n2;
    let gy = tok / a.n2;
    let v = sat_act(work[a.o0 + tok * d + j] + params[a.o1 + (gy * a.n3 + gx) * d + j]);
    work[a.o2 + tok * d + j] = v;
    work[a.o2 + (a.n0 + tok) * d + j] = v;
}

// The conditioning of both rows at this step's timestep: silu(sat(time[t] + prompt)).
// id.x: channel (< n0 = d), id.y: row (< 2). o0 = time table (params), o1 = prompts [2, d],
// o2 = conditioning [2, d], o3 = SiLU table (params).
@compute @workgroup_size(64)
fn condition(@builtin(global_invocation_id) id: vec3<u32>) {
    let j = id.x;
    let b = id.y;
    if (j >= a.n0 || b >= 2u) {
        return;
    }
    let d = a.n0;
    let t = u32(work[STEP_T]);
    let v = sat_act(params[a.o0 + t * d + j] + work[a.o1 + b * d + j]);
    work[a.o2 + b * d + j] = silu(v, a.o3);
}

// A norm's affine combined with a modulation (§9.5). id.x: channel (< n0 = d), id.y: row (< 2).
// o0 = γ, o1 = β (params), o2 = the modulation's shift chunk, o3 = its scale chunk (work,
// rows n1 apart), o4 = a [2, d], o5 = c [2, d].
@compute @workgroup_size(64)
fn modulate(@builtin(global_invocation_id) id: vec3<u32>) {
    let j = id.x;
    let b = id.y;
    if (j >= a.n0 || b >= 2u) {
        return;
    }
    let d = a.n0;
    let shift = work[a.o2 + b * a.n1 + j];
    let one_plus = 4096 + work[a.o3 + b * a.n1 + j];
    work[a.o4 + b * d + j] = mul_shift(params[a.o0 + j], one_plus, 12u);
    // sat(x + shift) with a saturating add: x beyond ±2^30 saturates either way.
    let c = clamp(mul_shift(params[a.o1 + j], one_plus, 12u), -1073741824, 1073741824);
    work[a.o5 + b * d + j] = sat_act(c + shift);
}

// Integer layer norm of one row with its row's affine (§9.5). id.x: row (< n0 = 2·tokens).
// n1 = d, n2 = tokens per conditioning row; o0 = source, o1 = destination, o2 = a [2, d],
// o3 = c [2, d].
@compute @workgroup_size(64)
fn layer_norm(@builtin(global_invocation_id) id: vec3<u32>) {
    let r = id.x;
    if (r >= a.n0) {
        return;
    }
    let d = a.n1;
    let b = r / a.n2;
    let x = a.o0 + r * d;
    let out = a.o1 + r * d;
    let ac = a.o2 + b * d;
    let cc = a.o3 + b * d;
    var sum = 0;
    for (var i = 0u; i < d; i++) {
        sum = sum + work[x + i];
    }
    let mu = div_round(sum, i32(d));
    var my = 0u;
    for (var i = 0u; i < d; i++) {
        my = max(my, u32(abs(work[x + i] - mu)));
    }
    let k = u32(max(bit_len(my) - 11, 0));
    var ss = 0u;
    for (var i = 0u; i < d; i++) {
        let y = rshift_round(work[x + i] - mu, k);
        ss = ss + u32(y * y);
    }
    let var_q = ss / d + (LN_EPS_Q24 >> min(2u * k, 31u));
    let s16 = isqrt(var_q << 8u);
    if (s16 == 0u) {
        for (var i = 0u; i < d; i++) {
            work[out + i] = sat_act(work[cc + i]);
        }
        return;
    }
    let inv = i32((1u << 30u) / s16);
    for (var i = 0u; i < d; i++) {
        let n = sat_act(mul_shift(work[x + i] - mu, inv, 14u + k));
        work[out + i] = sat_act(mul_shift(n, work[ac + i], 12u) + work[cc + i]);
    }
}

// x ← sat(x + clamp(mul_shift(h, gate, 12), ±ACT_MAX)). id.x: channel (< n1 = d), id.y: row
// (< n0). n2 = tokens per conditioning row, n3 = the gate's row stride; o0 = x, o1 = h,
// o2 = gate.
@compute @workgroup_size(64)
fn gate_add(@builtin(global_invocation_id) id: vec3<u32>) {
    let j = id.x;
    let r = id.y;
    if (j >= a.n1 || r >= a.n0) {
        return;
    }
    let d = a.n1;
    let g = work[a.o2 + (r / a.n2) * a.n3 + j];
    let i = r * d + j;
    let h = clamp(mul_shift(work[a.o1 + i], g, 12u), -ACT_MAX, ACT_MAX);
    work[a.o0 + i] = sat_act(work[a.o0 + i] + h);
}

// SiLU in place. id.x + id.y·65536 < n0 values at o0; o1 = the table (params).
@compute @workgroup_size(64)
fn silu_in_place(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x + id.y * 65536u;
    if (i >= a.n0) {
        return;
    }
    work[a.o0 + i] = silu(work[a.o0 + i], a.o1);
}

// dst[r] = [x[r], saved[r]] for the long skip. id.x: channel (< 2·n1), id.y: row (< n0).
// o0 = x, o1 = saved, o2 = destination [rows, 2d].
@compute @workgroup_size(64)
fn concat(@builtin(global_invocation_id) id: vec3<u32>) {
    let j = id.x;
    let r = id.y;
    let d = a.n1;
    if (j >= 2u * d || r >= a.n0) {
        return;
    }
    if (j < d) {
        work[a.o2 + r * 2u * d + j] = work[a.o0 + r * d + j];
    } else {
        work[a.o2 + r * 2u * d + j] = work[a.o1 + r * d + j - d];
    }
}

// dst ← src. id.x + id.y·65536 < n0 values; o0 = source, o1 = destination.
@compute @workgroup_size(64)
fn copy(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x + id.y * 65536u;
    if (i >= a.n0) {
        return;
    }
    work[a.o1 + i] = work[a.o0 + i];
}

// ---------------------------------------------------------------------------------------------
// Attention (§9.6). Tokens are [row b][token i] (2·n of them); per head h, the query words are
// at [h][2n][hd/4] with their exponents at [h][2n], keys the same, values at [h][2n][hd].

// The key and value exponents of each (row, head). id.x: head (< n2), id.y: row (< 2).
// n0 = tokens per row, n1 = hd, n3 = d; o0 = qkv [2n, 3d], o1 = exponents [2][heads][2].
@compute @workgroup_size(64)
fn kv_exponents(@builtin(global_invocation_id) id: vec3<u32>) {
    let head = id.x;
    let b = id.y;
    if (head >= a.n2 || b >= 2u) {
        return;
    }
    let n = a.n0;
    let hd = a.n1;
    let d = a.n3;
    var mk = 0u;
    var mv = 0u;
    for (var i = 0u; i < n; i++) {
        let row = a.o0 + (b * n + i) * 3u * d;
        for (var c = 0u; c < hd; c++) {
            mk = max(mk, u32(abs(work[row + d + head * hd + c])));
            mv = max(mv, u32(abs(work[row + 2u * d + head * hd + c])));
        }
    }
    var ek = 0;
    var ev = 0;
    if (mk != 0u) {
        ek = bit_len(mk) - 7;
    }
    if (mv != 0u) {
        ev = bit_len(mv) - 14;
    }
    let at = a.o1 + (b * a.n2 + head) * 2u;
    work[at] = ek;
    work[at + 1u] = ev;
}

// Keys to int8 words and values to 15-bit integers with their (row, head) exponents.
// id.x: token (< 2n), id.y: head (< n2). n0 = tokens per row, n1 = hd, n3 = d; o0 = qkv,
// o1 = exponents, o2 = key words, o3 = values.
@compute @workgroup_size(64)
fn quantize_kv(@builtin(global_invocation_id) id: vec3<u32>) {
    let tok = id.x;
    let head = id.y;
    let n = a.n0;
    if (tok >= 2u * n || head >= a.n2) {
        return;
    }
    let hd = a.n1;
    let d = a.n3;
    let b = tok / n;
    let at = a.o1 + (b * a.n2 + head) * 2u;
    let ek = work[at];
    let ev = work[at + 1u];
    let row = a.o0 + tok * 3u * d;
    let kw = hd / 4u;
    let kdst = a.o2 + (head * 2u * n + tok) * kw;
    for (var w = 0u; w < kw; w++) {
        let src = row + d + head * hd + 4u * w;
        work[kdst + w] = bitcast<i32>(pack4(
            quantize_i8(work[src], ek),
            quantize_i8(work[src + 1u], ek),
            quantize_i8(work[src + 2u], ek),
            quantize_i8(work[src + 3u], ek)
        ));
    }
    let vdst = a.o3 + (head * 2u * n + tok) * hd;
    for (var c = 0u; c < hd; c++) {
        work[vdst + c] = shift_clamp(work[row + 2u * d + head * hd + c], -ev, 16383);
    }
}

// Scores z_ij. id.x: i·n + j (< n·n), id.y: head (< n2), id.z: row b.
// n0 = tokens per row, n1 = hd; o0 = query words, o1 = query exponents, o2 = key words,
// o3 = kv exponents, o4 = scores [2][heads][n][n].
@compute @workgroup_size(64)
fn scores(@builtin(global_invocation_id) id: vec3<u32>) {
    let n = a.n0;
    let head = id.y;
    let b = id.z;
    if (id.x >= n * n || head >= a.n2 || b >= 2u) {
        return;
    }
    let i = id.x / n;
    let j = id.x % n;
    let kw = a.n1 / 4u;
    let q = a.o0 + (head * 2u * n + b * n + i) * kw;
    let k = a.o2 + (head * 2u * n + b * n + j) * kw;
    var acc = 0;
    for (var w = 0u; w < kw; w++) {
        acc = acc + dot4I8Packed(bitcast<u32>(work[q + w]), bitcast<u32>(work[k + w]));
    }
    let eq = work[a.o1 + head * 2u * n + b * n + i];
    let ek = work[a.o3 + (b * a.n2 + head) * 2u];
    work[a.o4 + ((b * a.n2 + head) * n + i) * n + j] = shift_clamp(acc, eq + ek - 16, 16777216);
}

// One softmax row, in place: scores → Q15 probabilities. id.x: i (< n0), id.y: head (< n2),
// id.z: row b. o0 = scores, o1 = the exp table (params).
@compute @workgroup_size(64)
fn softmax(@builtin(global_invocation_id) id: vec3<u32>) {
    let n = a.n0;
    let head = id.y;
    let b = id.z;
    if (id.x >= n || head >= a.n2 || b >= 2u) {
        return;
    }
    let row = a.o0 + ((b * a.n2 + head) * n + id.x) * n;
    var zmax = work[row];
    for (var j = 1u; j < n; j++) {
        zmax = max(zmax, work[row + j]);
    }
    var sum = 0u;
    for (var j = 0u; j < n; j++) {
        let k = min(u32(zmax - work[row + j]), u32(EXP_LAST));
        sum = sum + u32(params[a.o1 + k]);
    }
    let r = (1u << 31u) / max(sum, 1u);
    for (var j = 0u; j < n; j++) {
        let k = min(u32(zmax - work[row + j]), u32(EXP_LAST));
        let e = u32(params[a.o1 + k]);
        work[row + j] = i32((e * r + (1u << 15u)) >> 16u);
    }
}

// The weighted sum of values, rescaled into the head's slice of the output.
// id.x: i·hd + c (< n·hd), id.y: head (< n2), id.z: row b. n0 = tokens per row, n1 = hd,
// n3 = d; o0 = probabilities, o1 = values, o2 = kv exponents, o3 = output [2n, d].
@compute @workgroup_size(64)
fn weighted_values(@builtin(global_invocation_id) id: vec3<u32>) {
    let n = a.n0;
    let hd = a.n1;
    let head = id.y;
    let b = id.z;
    if (id.x >= n * hd || head >= a.n2 || b >= 2u) {
        return;
    }
    let i = id.x / hd;
    let c = id.x % hd;
    let p = a.o0 + ((b * a.n2 + head) * n + i) * n;
    let v = a.o1 + (head * 2u * n + b * n) * hd + c;
    var acc = 0;
    for (var j = 0u; j < n; j++) {
        acc = acc + work[p + j] * work[v + j * hd];
    }
    let ev = work[a.o2 + (b * a.n2 + head) * 2u + 1u];
    work[a.o3 + (b * n + i) * a.n3 + head * hd + c] = shift_clamp(acc, ev - 15, ACT_MAX);
}

// ---------------------------------------------------------------------------------------------
// The sampler (§9.7)

// One guided DDIM step of one sample value. id.x + id.y·65536: value (< n0 = C·H·W).
// n1 = patch side, n2 = grid width, n3 = C·p·p; o0 = sample [C, H, W], o1 = the network's
// output [2, tokens, C·p·p]; i0 = width, i1 = height, i2 = tokens per row.
@compute @workgroup_size(64)
fn sample_step(@builtin(global_invocation_id) id: vec3<u32>) {
    let e = id.x + id.y * 65536u;
    if (e >= a.n0) {
        return;
    }
    let w = u32(a.i0);
    let h = u32(a.i1);
    let p = a.n1;
    let ch = e / (w * h);
    let y = (e / w) % h;
    let x = e % w;
    let tok = (y / p) * a.n2 + x / p;
    let inner = (ch * p + y % p) * p + x % p;
    let u = work[a.o1 + tok * a.n3 + inner];
    let c = work[a.o1 + (u32(a.i2) + tok) * a.n3 + inner];
    let g = work[STEP_G];
    let o = clamp(u + clamp(mul_shift(c - u, g, 16u), -WIDE, WIDE), -SAMPLE_MAX, SAMPLE_MAX);
    let xa = clamp(mul_shift(work[a.o0 + e], work[STEP_A], 30u), -WIDE, WIDE);
    let ob = clamp(mul_shift(o, work[STEP_B], 30u), -WIDE, WIDE);
    work[a.o0 + e] = clamp(xa + ob, -SAMPLE_MAX, SAMPLE_MAX);
}

// The 32-bit mixer of the noise stream (noise_q::mix32).
fn mix32(x0: u32) -> u32 {
    var x = x0;
    x = x ^ (x >> 16u);
    x = x * 0x7feb352du;
    x = x ^ (x >> 15u);
    x = x * 0x846ca68bu;
    x = x ^ (x >> 16u);
    return x;
}

// The initial sample (§9.2): value i = normal_q12(uniform(key, 0, i)) · 16.
// id.x + id.y·65536: value (< n0). o0 = sample, o1 = the key's lane-0 words (work, 4 words),
// o2 = the inverse-CDF table (params, 4097 entries).
@compute @workgroup_size(64)
fn initial_noise(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x + id.y * 65536u;
    if (i >= a.n0) {
        return;
    }
    let k0 = bitcast<u32>(work[a.o1]);
    let k1 = bitcast<u32>(work[a.o1 + 1u]);
    let k2 = bitcast<u32>(work[a.o1 + 2u]);
    let k3 = bitcast<u32>(work[a.o1 + 3u]);
    let u = mix32(k0 ^ mix32(k1 ^ mix32(k2 ^ mix32(k3 ^ i))));
    let j = u >> 20u;
    let f = i32((u >> 4u) & 0xFFFFu);
    let lo = params[a.o2 + j];
    let hi = params[a.o2 + j + 1u];
    work[a.o0 + i] = (lo + (((hi - lo) * f + (1 << 15)) >> 16)) << 4u;
}

// A Q16 sample value as an 8-bit channel: round((v + 1)·127.5) half up on clamp(v, ±2^16).
fn to_u8(v: i32) -> u32 {
    let c = clamp(v, -65536, 65536) + 65536;
    return u32((c * 255 + 65536) >> 17u);
}

// The sample's pixels as RGBA8 words (red in the low byte, alpha 255), one per pixel; with a
// palette, each snapped to its nearest entry (least squared RGB distance, ties to the lower
// index), whose word it takes, alpha included.
// id.x + id.y·65536: pixel (< n0 = W·H). o0 = sample [3, H, W], o1 = destination;
// n1 = palette entries (0: none) at params[o2].
@compute @workgroup_size(64)
fn pixels(@builtin(global_invocation_id) id: vec3<u32>) {
    let p = id.x + id.y * 65536u;
    if (p >= a.n0) {
        return;
    }
    let plane = a.n0;
    let r = to_u8(work[a.o0 + p]);
    let g = to_u8(work[a.o0 + plane + p]);
    let b = to_u8(work[a.o0 + 2u * plane + p]);
    var rgba = r | (g << 8u) | (b << 16u) | (255u << 24u);
    var best = 0x7fffffff;
    for (var e = 0u; e < a.n1; e++) {
        let entry = bitcast<u32>(params[a.o2 + e]);
        let dr = i32(entry & 255u) - i32(r);
        let dg = i32((entry >> 8u) & 255u) - i32(g);
        let db = i32((entry >> 16u) & 255u) - i32(b);
        let d = dr * dr + dg * dg + db * db;
        if (d < best) {
            best = d;
            rgba = entry;
        }
    }
    work[a.o1 + p] = bitcast<i32>(rgba);
}

// ---------------------------------------------------------------------------------------------
// Probes: single primitives over arrays, for the kernel tests.

// work[o1 + i] = mul_shift(work[o0 + 3i], work[o0 + 3i + 1], work[o0 + 3i + 2]) for i < n0.
@compute @workgroup_size(64)
fn probe_mul_shift(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i >= a.n0) {
        return;
    }
    let at = a.o0 + 3u * i;
    work[a.o1 + i] = mul_shift(work[at], work[at + 1u], u32(work[at + 2u]));
}

// work[o1 + i] = silu(work[o0 + i]) for i < n0 with the table at params[o2].
@compute @workgroup_size(64)
fn probe_silu(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i >= a.n0) {
        return;
    }
    work[a.o1 + i] = silu(work[a.o0 + i], a.o2);
}
