"""256-bit SIMD vectors for Numba: the fused backend's registers.

LLVM's auto-vectoriser does poorly on this model's tiny loops (16..128 wide):
every short inner loop pays runtime alias checks, and accumulators live in
memory, so a 16x16 matmul runs at ~5 GFLOP/s. With a vector *type* that
Numba keeps in SSA registers, a kernel can hold a 2x4 block of accumulators
in registers the way hand-written C with intrinsics does (~35 GFLOP/s in
float64 at these sizes, measured).

A vector holds 32 bytes of the array's dtype: 4 float64 or 8 float32 lanes;
`vwidth(x)` is that lane count as a compile-time constant. Everything here is
callable only from jitted code:

    v = vload(row, i)           # row[i : i+W], row a C-contiguous 1-D array
    vstore(row, i, v)
    s = vsplat(x, like)         # x in every lane, dtype of `like` (array or vector)
    a + b, a - b, a * b, a / b  # lane-wise, IEEE, no fused multiply-add
    vmax(a, b), vsqrt(a), vexp(a)
    exp_shifted(row, shift, tail)  # row = vexp(row - shift), any length (tail: one vector of scratch)
    vwhere_positive(x, v)       # v where x > 0, else 0 (the ReLU mask)
    vsum(v)                     # horizontal, to a scalar
    vmask(v, lo, hi, fill)      # lanes outside lo..hi-1 replaced by fill
    vlane(v, k)                 # one lane
    m = matrix_view(flat, off, rows, cols)  # flat[off : off + rows*cols] as a C-contiguous matrix
    take(a, i), skip(a, i0), transposed(m)  # a[i], a[i0:], m.T
    take_all(record, i)         # take(field, i) of every field of a namedtuple of arrays
All views here are borrowed (see below).

Products and sums are not fused (no FMA contraction): a matmul written with
these ops rounds exactly like the reference's left-to-right dot products.
"""

from __future__ import annotations

import math
import operator

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, overload, register_model
from numba.np.arrayobj import make_array, populate_array

VECTOR_BYTES = 32


class VecType(types.Type):
    """A 256-bit vector of float32 or float64 lanes."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.lanes = VECTOR_BYTES // (dtype.bitwidth // 8)
        super().__init__(name=f"Vec({dtype}x{self.lanes})")


@register_model(VecType)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        lane = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(lane, fe_type.lanes))


def _vec_type_of(t):
    """The vector type for an array or vector type `t` (None if it has no float dtype)."""
    if isinstance(t, VecType):
        return t
    if isinstance(t, types.Array) and t.dtype in (types.float32, types.float64):
        return VecType(t.dtype)
    return None


def _is_contiguous_row(arr):
    return isinstance(arr, types.Array) and arr.ndim == 1 and arr.layout == "C" and _vec_type_of(arr) is not None


def _i32(x):
    return ir.Constant(ir.IntType(32), x)


def _const_vec(vty, llty, value):
    return ir.Constant(llty, [ir.Constant(llty.element, value)] * vty.lanes)


def _elem_pointer(context, builder, arrty, arr, idx):
    ary = context.make_array(arrty)(context, builder, arr)
    return cgutils.get_item_pointer(context, builder, arrty, ary, [idx])


# -- memory -------------------------------------------------------------------


@intrinsic
def vwidth(typingctx, like):
    vty = _vec_type_of(like)
    if vty is None:
        return None

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, vty.lanes)
    return types.intp(like), codegen


@intrinsic
def vload(typingctx, row, i):
    if not _is_contiguous_row(row) or not isinstance(i, types.Integer):
        return None
    vty = VecType(row.dtype)

    def codegen(context, builder, sig, args):
        ptr = _elem_pointer(context, builder, row, args[0], args[1])
        llty = context.get_value_type(vty)
        return builder.load(builder.bitcast(ptr, llty.as_pointer()), align=row.dtype.bitwidth // 8)
    return vty(row, i), codegen


@intrinsic
def vstore(typingctx, row, i, v):
    if not _is_contiguous_row(row) or not isinstance(i, types.Integer) or v != VecType(row.dtype):
        return None

    def codegen(context, builder, sig, args):
        ptr = _elem_pointer(context, builder, row, args[0], args[1])
        builder.store(args[2], builder.bitcast(ptr, args[2].type.as_pointer()), align=row.dtype.bitwidth // 8)
        return context.get_dummy_value()
    return types.none(row, i, v), codegen


@intrinsic
def vsplat(typingctx, x, like):
    vty = _vec_type_of(like)
    if vty is None or not isinstance(x, (types.Float, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        val = context.cast(builder, args[0], x, vty.dtype)
        llty = context.get_value_type(vty)
        one = builder.insert_element(ir.Constant(llty, ir.Undefined), val, _i32(0))
        return builder.shuffle_vector(one, ir.Constant(llty, ir.Undefined),
                                      ir.Constant(ir.VectorType(ir.IntType(32), vty.lanes), [0] * vty.lanes))
    return vty(x, like), codegen


# -- borrowed views ------------------------------------------------------------
#
# Numba gives every view a counted reference to its buffer: an atomic increment
# and decrement per view, ~13% of a names step when views are taken per layer
# and per row. The fused kernels only take views of buffers the caller keeps
# alive for the whole call, so these views carry no reference at all (a NULL
# meminfo, for which Numba's incref/decref fold away).


def _borrowed(context, builder, retty, data, shape, strides, itemsize):
    dst = make_array(retty)(context, builder)
    null = cgutils.get_null_value(dst.meminfo.type)
    populate_array(dst, data=data, shape=cgutils.pack_array(builder, shape),
                   strides=cgutils.pack_array(builder, strides), itemsize=itemsize, meminfo=null,
                   parent=cgutils.get_null_value(dst.parent.type))
    return dst._getvalue()


def _intp(context, builder, val, ty):
    return context.cast(builder, val, ty, types.intp)


@intrinsic
def matrix_view(typingctx, flat, off, rows, cols):
    """flat[off : off + rows*cols] as a (rows, cols) C-contiguous matrix (borrowed)."""
    if not (isinstance(flat, types.Array) and flat.ndim == 1 and flat.layout == "C"):
        return None
    if not all(isinstance(x, types.Integer) for x in (off, rows, cols)):
        return None
    retty = flat.copy(ndim=2, layout="C")

    def codegen(context, builder, sig, args):
        src = make_array(flat)(context, builder, args[0])
        off_, rows_, cols_ = (_intp(context, builder, v, t) for v, t in zip(args[1:], sig.args[1:]))
        return _borrowed(context, builder, retty, builder.gep(src.data, [off_]), [rows_, cols_],
                         [builder.mul(cols_, src.itemsize), src.itemsize], src.itemsize)
    return retty(flat, off, rows, cols), codegen


def _takes_rows(arr):
    return isinstance(arr, types.Array) and arr.ndim >= 2 and arr.layout == "C"


def _take_type(arr):
    return arr.copy(ndim=arr.ndim - 1, layout="C")


def _take_codegen(context, builder, arr, value, i, index):
    src = make_array(arr)(context, builder, value)
    shape = cgutils.unpack_tuple(builder, src.shape, arr.ndim)
    strides = cgutils.unpack_tuple(builder, src.strides, arr.ndim)
    offset = builder.mul(_intp(context, builder, index, i), shape[1])
    for d in shape[2:]:
        offset = builder.mul(offset, d)
    return _borrowed(context, builder, _take_type(arr), builder.gep(src.data, [offset]), shape[1:], strides[1:],
                     src.itemsize)


@intrinsic
def take(typingctx, arr, i):
    """arr[i] of a C-contiguous array of 2+ dimensions (borrowed)."""
    if not (_takes_rows(arr) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return _take_codegen(context, builder, arr, args[0], i, args[1])
    return _take_type(arr)(arr, i), codegen


@intrinsic
def take_all(typingctx, record, i):
    """`take(field, i)` of every field of a namedtuple of arrays, as a namedtuple of the same class (borrowed).

    The buffers of many documents (or groups) share a leading axis; this picks one
    document's without a list of the fields, which their namedtuple already is.
    """
    if not (isinstance(record, types.BaseNamedTuple) and all(_takes_rows(t) for t in record.types)
            and isinstance(i, types.Integer)):
        return None
    retty = types.BaseTuple.from_types([_take_type(t) for t in record.types], record.instance_class)

    def codegen(context, builder, sig, args):
        views = [_take_codegen(context, builder, t, builder.extract_value(args[0], k), i, args[1])
                 for k, t in enumerate(record.types)]
        return context.make_tuple(builder, retty, views)
    return retty(record, i), codegen


@intrinsic
def skip(typingctx, arr, i0):
    """arr[i0:] of a C-contiguous array (borrowed): the first i0 rows dropped."""
    if not (isinstance(arr, types.Array) and arr.layout == "C" and isinstance(i0, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        src = make_array(arr)(context, builder, args[0])
        shape = cgutils.unpack_tuple(builder, src.shape, arr.ndim)
        strides = cgutils.unpack_tuple(builder, src.strides, arr.ndim)
        i0_ = _intp(context, builder, args[1], i0)
        offset = i0_
        for d in shape[1:]:
            offset = builder.mul(offset, d)
        return _borrowed(context, builder, arr, builder.gep(src.data, [offset]),
                         [builder.sub(shape[0], i0_)] + shape[1:], strides, src.itemsize)
    return arr(arr, i0), codegen


@intrinsic
def transposed(typingctx, arr):
    """arr.T of a C- or F-contiguous matrix, the other layout (borrowed)."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2 and arr.layout in "CF"):
        return None
    retty = arr.copy(layout="F" if arr.layout == "C" else "C")

    def codegen(context, builder, sig, args):
        src = make_array(arr)(context, builder, args[0])
        shape = cgutils.unpack_tuple(builder, src.shape, 2)
        strides = cgutils.unpack_tuple(builder, src.strides, 2)
        return _borrowed(context, builder, retty, src.data, shape[::-1], strides[::-1], src.itemsize)
    return retty(arr), codegen


# -- lane-wise arithmetic -----------------------------------------------------


def _binary(opname):
    @intrinsic
    def impl(typingctx, a, b):
        if not isinstance(a, VecType) or a != b:
            return None

        def codegen(context, builder, sig, args):
            return getattr(builder, opname)(args[0], args[1])
        return a(a, b), codegen
    return impl


_vadd, _vsub, _vmul, _vdiv = _binary("fadd"), _binary("fsub"), _binary("fmul"), _binary("fdiv")

for _op, _fn in ((operator.add, _vadd), (operator.sub, _vsub), (operator.mul, _vmul), (operator.truediv, _vdiv)):
    def _register(op, fn):
        @overload(op)
        def _ov(a, b):
            if isinstance(a, VecType) and a == b:
                return lambda a, b: fn(a, b)
    _register(_op, _fn)


@intrinsic
def vmax(typingctx, a, b):
    """Lane-wise max; a NaN in `a` propagates (b is taken only where a > b is false and b >= a)."""
    if not isinstance(a, VecType) or a != b:
        return None

    def codegen(context, builder, sig, args):
        # select(a < b, b, a): NaN in a compares false and stays
        return builder.select(builder.fcmp_ordered("<", args[0], args[1]), args[1], args[0])
    return a(a, b), codegen


@intrinsic
def vwhere_positive(typingctx, x, v):
    if not isinstance(x, VecType) or x != v:
        return None

    def codegen(context, builder, sig, args):
        zero = _const_vec(x, args[0].type, 0.0)
        return builder.select(builder.fcmp_ordered(">", args[0], zero), args[1], zero)
    return x(x, v), codegen


def _unary_intrinsic(name):
    @intrinsic
    def impl(typingctx, a):
        if not isinstance(a, VecType):
            return None

        def codegen(context, builder, sig, args):
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(args[0].type, [args[0].type]),
                                                f"llvm.{name}.v{a.lanes}f{a.dtype.bitwidth}")
            return builder.call(fn, [args[0]])
        return a(a), codegen
    return impl


vsqrt = _unary_intrinsic("sqrt")
_vrint = _unary_intrinsic("rint")


@intrinsic
def vlane(typingctx, v, k):
    if not isinstance(v, VecType) or not isinstance(k, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        return builder.extract_element(args[0], args[1])
    return v.dtype(v, k), codegen


@intrinsic
def vmask(typingctx, v, lo, hi, fill):
    """Lanes lo..hi-1 of v, `fill` in the others (a row's tail, or the causal mask of a block)."""
    if not isinstance(v, VecType) or not isinstance(lo, types.Integer) or not isinstance(hi, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        vec, lo_, hi_, fil = args
        i64 = ir.IntType(64)
        idxty = ir.VectorType(i64, v.lanes)
        zeros = ir.Constant(ir.VectorType(ir.IntType(32), v.lanes), [0] * v.lanes)

        def splat(x, ty):
            return builder.shuffle_vector(builder.insert_element(ir.Constant(ty, ir.Undefined), x, _i32(0)),
                                          ir.Constant(ty, ir.Undefined), zeros)
        lane_ids = ir.Constant(idxty, [ir.Constant(i64, i) for i in range(v.lanes)])
        lo_v = splat(context.cast(builder, lo_, lo, types.int64), idxty)
        hi_v = splat(context.cast(builder, hi_, hi, types.int64), idxty)
        inside = builder.and_(builder.icmp_signed(">=", lane_ids, lo_v), builder.icmp_signed("<", lane_ids, hi_v))
        return builder.select(inside, vec, splat(context.cast(builder, fil, fill, v.dtype), vec.type))
    return v(v, lo, hi, fill), codegen


# -- horizontal reductions ----------------------------------------------------


def _tree(builder, vec, lanes, combine):
    """Halve the vector until one lane is left: a fixed pairwise order."""
    width = lanes
    while width > 1:
        width //= 2
        hi = builder.shuffle_vector(vec, vec, ir.Constant(ir.VectorType(ir.IntType(32), lanes),
                                                          list(range(width, 2 * width)) + [0] * (lanes - width)))
        vec = combine(vec, hi)
    return builder.extract_element(vec, _i32(0))


@intrinsic
def vsum(typingctx, v):
    if not isinstance(v, VecType):
        return None

    def codegen(context, builder, sig, args):
        return _tree(builder, args[0], v.lanes, builder.fadd)
    return v.dtype(v), codegen


# -- exp ----------------------------------------------------------------------


@intrinsic
def _vscale_pow2(typingctx, p, k):
    """p * 2**k for integer-valued k, as p * 2**(k >> 1) * 2**(k - (k >> 1)).

    Two factors because exp near the overflow limit needs k = bias + 1 (2**k itself
    is not a float there, though p * 2**k is); each factor is a normal number for
    |k| up to twice the exponent range (k is clamped to that).
    """
    if not isinstance(p, VecType) or p != k:
        return None
    bits, mant, bias = (64, 52, 1023) if p.dtype == types.float64 else (32, 23, 127)

    def codegen(context, builder, sig, args):
        pv, kv = args
        ity = ir.VectorType(ir.IntType(bits), p.lanes)

        def const(value):
            return ir.Constant(ity, [ir.Constant(ir.IntType(bits), value)] * p.lanes)

        def pow2(e):  # the float 2**e, e within the normal exponent range
            return builder.bitcast(builder.shl(builder.add(e, const(bias)), const(mant)), pv.type)
        sat = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ity, [kv.type]),
                                             f"llvm.fptosi.sat.v{p.lanes}i{bits}.v{p.lanes}f{bits}")
        ki = builder.call(sat, [kv])  # NaN -> 0, so no poison reaches the bit tricks
        lo, hi = const(2 * (1 - bias)), const(2 * bias)
        ki = builder.select(builder.icmp_signed("<", ki, lo), lo, ki)
        ki = builder.select(builder.icmp_signed(">", ki, hi), hi, ki)
        half = builder.ashr(ki, const(1))
        return builder.fmul(builder.fmul(pv, pow2(half)), pow2(builder.sub(ki, half)))
    return p(p, k), codegen


# Where exp leaves the normal range: below ln(smallest normal) the result would be
# denormal and is 0 instead; above ln(largest finite) it is inf. In between every
# result is computed (p * 2**k overflows to inf on its own right at the top).
EXP_LIMITS = {types.float64: (-708.3964185322641, 709.782712893384),
              types.float32: (-87.33654475, 88.72283935546875)}


@intrinsic
def _vexp_limits(typingctx, x, y):
    """exp's special cases: 0 below the normal range (and for -inf), inf above it (and for inf), NaN stays NaN."""
    if not isinstance(x, VecType) or x != y:
        return None
    lo, hi = EXP_LIMITS[x.dtype]

    def codegen(context, builder, sig, args):
        xv, yv = args
        y0 = builder.select(builder.fcmp_ordered("<", xv, _const_vec(x, xv.type, lo)), _const_vec(x, xv.type, 0.0), yv)
        return builder.select(builder.fcmp_ordered(">", xv, _const_vec(x, xv.type, hi)),
                              _const_vec(x, xv.type, math.inf), y0)
    return x(x, y), codegen


def vexp(x):
    """exp, lane-wise, within ~1 ulp where the result is a normal number; 0 where it would be denormal
    (and for -inf: exact zeros for masked lanes), inf where it overflows (and for inf), NaN for NaN."""


# exp(x) = 2**k * exp(r), k = round(x / ln 2), r = x - k ln 2 in [-ln2/2, ln2/2] (Cody-Waite: ln 2 in two
# parts so that k * LN2_HI is exact); exp(r) by its Taylor series, long enough that the truncation error is
# below the dtype's rounding (r**14/14! < 5e-18 in float64, r**8/8! < 6e-9 in float32), evaluated by
# Estrin's scheme: pairs, then pairs of pairs, so the dependency chain is 4 deep instead of 13.
_LOG2E = 1.4426950408889634
_LN2_HI_64, _LN2_LO_64 = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_LN2_HI_32, _LN2_LO_32 = 0.693359375, -2.12194440e-4
_C = tuple(1.0 / math.factorial(i) for i in range(14))


def _vexp64(x):
    k = _vrint(x * vsplat(_LOG2E, x))
    r = (x - k * vsplat(_LN2_HI_64, x)) - k * vsplat(_LN2_LO_64, x)
    r2 = r * r
    r4 = r2 * r2
    q0 = vsplat(_C[0], x) + vsplat(_C[1], x) * r
    q1 = vsplat(_C[2], x) + vsplat(_C[3], x) * r
    q2 = vsplat(_C[4], x) + vsplat(_C[5], x) * r
    q3 = vsplat(_C[6], x) + vsplat(_C[7], x) * r
    q4 = vsplat(_C[8], x) + vsplat(_C[9], x) * r
    q5 = vsplat(_C[10], x) + vsplat(_C[11], x) * r
    q6 = vsplat(_C[12], x) + vsplat(_C[13], x) * r
    s0, s1, s2, s3 = q0 + q1 * r2, q2 + q3 * r2, q4 + q5 * r2, q6
    p = (s0 + s1 * r4) + (s2 + s3 * r4) * (r4 * r4)
    return _vexp_limits(x, _vscale_pow2(p, k))


def _vexp32(x):
    k = _vrint(x * vsplat(_LOG2E, x))
    r = (x - k * vsplat(_LN2_HI_32, x)) - k * vsplat(_LN2_LO_32, x)
    r2 = r * r
    q0 = vsplat(_C[0], x) + vsplat(_C[1], x) * r
    q1 = vsplat(_C[2], x) + vsplat(_C[3], x) * r
    q2 = vsplat(_C[4], x) + vsplat(_C[5], x) * r
    q3 = vsplat(_C[6], x) + vsplat(_C[7], x) * r
    p = (q0 + q1 * r2) + (q2 + q3 * r2) * (r2 * r2)
    return _vexp_limits(x, _vscale_pow2(p, k))


@overload(vexp)
def _vexp_overload(x):
    if isinstance(x, VecType):
        return _vexp64 if x.dtype == types.float64 else _vexp32


def exp_shifted(row, shift, tail):
    """row[i] = vexp(row[i] - shift) for the whole row, in place, whatever its length.

    Whole vectors in place; the last, partial one through `tail`, a scratch row of
    one vector, so nothing past the row's end is read or written (it may be the
    next row's data). For array code that does not pad its rows to whole vectors.
    """


@overload(exp_shifted)
def _exp_shifted_overload(row, shift, tail):
    if not (_is_contiguous_row(row) and _is_contiguous_row(tail) and row.dtype == tail.dtype):
        return None

    def impl(row, shift, tail):
        W = vwidth(row)
        n = row.shape[0]
        whole = n - n % W
        by = vsplat(shift, row)
        for i in range(0, whole, W):
            vstore(row, i, vexp(vload(row, i) - by))
        if whole < n:
            for i in range(W):  # lanes past the row's end: exp(0), unread
                tail[i] = row[whole + i] if whole + i < n else shift
            vstore(tail, 0, vexp(vload(tail, 0) - by))
            for i in range(whole, n):
                row[i] = tail[i - whole]
    return impl
