// Kernel score-difference flow (002 Eq. 17-18, Alg. 1): each step draws z = y + sigma eps and moves every
// particle by eta/2 (E_p[K(z,x) x]/E_p[K(z,x)] - E_q[K(z,y) y]/E_q[K(z,y)]), the two kernel-weighted means
// taken over all targets and particles, or over a fresh random batch of B of each.
#ifndef SAMPLED_CORE_FLOWS_SD_FLOW_H_
#define SAMPLED_CORE_FLOWS_SD_FLOW_H_

#include "core/common/points.h"
#include "core/kernels/kernel_sums.h"

namespace sampled {

// The SD direction of 002 Eq. 18 without the step size: out_j = 1/2 (m_p(z_j) - m_q(z_j)) where m_p and m_q
// are the Gaussian-kernel (bandwidth sigma) weighted means of the rows of `targets` and of `particles`
// seen from z_j. `scratch` holds m_p between the two kernel sums.
template <typename Scalar>
void SdFlowDirection(const PointsT<Scalar>& z, const PointsT<Scalar>& targets, const PointsT<Scalar>& particles,
                     double sigma, KernelWorkspace<Scalar>& ws, int threads, Points* scratch, Points* out);

}  // namespace sampled

#endif  // SAMPLED_CORE_FLOWS_SD_FLOW_H_
