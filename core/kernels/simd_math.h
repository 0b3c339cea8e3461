// SIMD math the kernel sums need beyond Eigen's packet functions.
#ifndef SAMPLED_CORE_KERNELS_SIMD_MATH_H_
#define SAMPLED_CORE_KERNELS_SIMD_MATH_H_

#include <type_traits>

#include <Eigen/Core>

namespace sampled {

namespace ei = Eigen::internal;

// 2^t for t < 127.5 (float): t = n + f with n = round(t), |f| <= 1/2, 2^f from a degree-5 polynomial fitted
// to 2^f in relative error on [-1/2, 1/2] (1.9e-7 in float32 arithmetic, 3 float32 ulps), and 2^n applied
// by the exponent: AVX-512's scalef (one instruction, 0 far below), elsewhere bits built in the exponent
// field. Below 2^-126 it returns 0 (or, with AVX-512, a denormal that the kernels' flush-to-zero mode
// makes 0); above 127.5 the result is meaningless (callers keep t far below: the running shift, <= 32).
EIGEN_ALWAYS_INLINE ei::packet_traits<float>::type FastExp2(const ei::packet_traits<float>::type& t_in) {
  using Packet = ei::packet_traits<float>::type;
  const Packet t = ei::pmax(t_in, ei::pset1<Packet>(-127.0f));  // also keeps -inf from making NaN
  const Packet n = ei::print(t);  // round to nearest
  const Packet f = ei::psub(t, n);
  Packet p = ei::pset1<Packet>(1.326472707e-3f);
  p = ei::pmadd(p, f, ei::pset1<Packet>(9.671512649e-3f));
  p = ei::pmadd(p, f, ei::pset1<Packet>(5.550733744e-2f));
  p = ei::pmadd(p, f, ei::pset1<Packet>(2.402224209e-1f));
  p = ei::pmadd(p, f, ei::pset1<Packet>(6.931469776e-1f));
  p = ei::pmadd(p, f, ei::pset1<Packet>(1.0f));
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<Packet, __m512>) return _mm512_scalef_ps(p, n);
#endif
  using PacketI = ei::unpacket_traits<Packet>::integer_packet;
  const PacketI bits = ei::plogical_shift_left<23>(ei::padd(ei::pcast<Packet, PacketI>(n), ei::pset1<PacketI>(127)));
  const Packet scale = ei::preinterpret<Packet>(bits);
  // t = -127 gives an exponent field of 0: anything clamped there is treated as 0.
  return ei::pand(ei::pmul(p, scale), ei::pcmp_lt(ei::pset1<Packet>(-127.0f), t));
}

}  // namespace sampled

#endif  // SAMPLED_CORE_KERNELS_SIMD_MATH_H_
