// SIMD math the kernel sums need beyond Eigen's packet functions.
#ifndef SAMPLED_CORE_KERNELS_SIMD_MATH_H_
#define SAMPLED_CORE_KERNELS_SIMD_MATH_H_

#include <Eigen/Core>

namespace sampled {

namespace ei = Eigen::internal;

// 2^t for t < 127.5 (float): t = n + f with n = round(t), |f| <= 1/2, 2^f from Cephes' degree-6 minimax
// polynomial (relative error ~1e-7), 2^n built in the exponent bits. Below 2^-126 it returns 0; above
// 127.5 the result is meaningless (callers keep t far below: the kernel sums' running shift, <= 32).
EIGEN_ALWAYS_INLINE ei::packet_traits<float>::type FastExp2(const ei::packet_traits<float>::type& t_in) {
  using Packet = ei::packet_traits<float>::type;
  using PacketI = ei::unpacket_traits<Packet>::integer_packet;
  const Packet t = ei::pmax(t_in, ei::pset1<Packet>(-126.0f));
  const Packet n = ei::print(t);  // round to nearest
  const Packet f = ei::psub(t, n);
  Packet p = ei::pset1<Packet>(1.535336188319500e-4f);
  p = ei::pmadd(p, f, ei::pset1<Packet>(1.339887440266574e-3f));
  p = ei::pmadd(p, f, ei::pset1<Packet>(9.618437357674640e-3f));
  p = ei::pmadd(p, f, ei::pset1<Packet>(5.550332471162809e-2f));
  p = ei::pmadd(p, f, ei::pset1<Packet>(2.402264791363012e-1f));
  p = ei::pmadd(p, f, ei::pset1<Packet>(6.931472028550421e-1f));
  p = ei::pmadd(p, f, ei::pset1<Packet>(1.0f));
  const PacketI bits = ei::plogical_shift_left<23>(ei::padd(ei::pcast<Packet, PacketI>(n), ei::pset1<PacketI>(127)));
  const Packet scale = ei::preinterpret<Packet>(bits);
  // t = -126 exactly gives the smallest normal; anything clamped there is treated as 0.
  return ei::pand(ei::pmul(p, scale), ei::pcmp_lt(ei::pset1<Packet>(-126.0f), t));
}

}  // namespace sampled

#endif  // SAMPLED_CORE_KERNELS_SIMD_MATH_H_
