// Class Probability Preserving (CPP) pooling, CPU kernel (SeeThroughNet, CVPR 2022, Eq. 1).
//
// A PyTorch custom operator, seethroughnet::cpp_chain, registered with TORCH_LIBRARY;
// seethroughnet/nn/cpp.py builds this file with torch.utils.cpp_extension.load on first use and
// calls torch.ops.seethroughnet.cpp_chain. The pure-torch path in cpp.py is the reference;
// tests/nn/test_cpp_targets.py checks this kernel against it and both against a direct one-hot +
// average-pooling computation.
//
// cpp_chain(labels, num_classes, ignore_value, scales, out_heights, out_widths, num_threads)
//   labels: (N, H, W) CPU integer labels (uint8, int8, int16, int32, int64).
//   scales: S scales s_0 < s_1 < ... < s_{S-1}, each dividing the next (a chain such as 4, 8, 16, 32).
//   out_heights/out_widths: ceil(H/s) ("pad" policy) or floor(H/s) ("crop" policy) per scale.
//   Returns S float32 tensors (N, K+1, out_heights[k], out_widths[k]) of class fractions.
//
//   One pass over the labels. Pixels are counted into the rows of the finest output (as float
//   counts; exact below 2^24), each finished row of scale k is added block-wise into its row of
//   scale k+1 (counts at s_{k+1} are sums of (s_{k+1}/s_k)^2 blocks of counts at s_k), then the
//   pixels of edge cells that lie outside the label map are added to the ignore channel and the
//   row is divided by s_k^2. Work is split over (n, band of s_{S-1} label rows) across num_threads
//   std::threads; every band owns whole rows of every scale, so no two threads write one cell.
//
//   A label outside [0, K) that is not `ignore` raises ValueError naming the first such value met.

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace {

template <typename Fn>
void parallel_for(int64_t n_items, int nthreads, Fn fn) {
  int64_t nt = std::max<int64_t>(1, std::min<int64_t>(nthreads, n_items));
  if (nt == 1) {
    fn(0, n_items);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(size_t(nt - 1));
  for (int64_t t = 1; t < nt; ++t) {
    const int64_t b = n_items * t / nt, e = n_items * (t + 1) / nt;
    pool.emplace_back([=]() { fn(b, e); });
  }
  fn(0, n_items / nt);
  for (auto& th : pool) th.join();
}

// channel of a label: itself for [0, K), K for the ignore value, K + 1 (a scratch slot) otherwise
inline int64_t label_channel(int64_t v, int64_t K, int64_t ignore) {
  return (uint64_t(v) < uint64_t(K)) ? v : (v == ignore ? K : K + 1);
}

inline int64_t clamp_len(int64_t total, int64_t start, int64_t len) {
  return std::max<int64_t>(0, std::min(total - start, len));
}

template <typename T, int S0>
void chain_impl(const T* labels, int64_t N, int64_t H, int64_t W, int64_t K, int64_t ignore,
                int64_t S, const int64_t* scales, const int64_t* Hos, const int64_t* Wos,
                float* const* outs, int nthreads, int64_t* bad) {
  const int64_t C = K + 1;
  const int64_t s0 = scales[0], Ho0 = Hos[0], Wo0 = Wos[0];
  const int64_t band_rows = scales[S - 1] / s0;  // fine rows per band
  const int64_t n_bands = (Ho0 + band_rows - 1) / band_rows;
  std::atomic<int> bad_flag{0};
  std::mutex bad_mutex;
  int64_t bad_value = 0;

  parallel_for(N * n_bands, nthreads, [&](int64_t begin, int64_t end) {
    // Thread-local counts of one fine row, channel-major; plane C counts invalid labels. The
    // planes are 64 bytes more than a row apart: the output planes of one row lie Ho0*Wo0 floats
    // apart (often a multiple of 4 KiB), which would make every plane hit the same cache sets.
    const int64_t ls = Wo0 + 16;
    std::vector<float> loc(static_cast<size_t>((C + 1) * ls));
    std::vector<float*> plane(static_cast<size_t>(C) + 1);
    for (int64_t c = 0; c <= C; ++c) plane[size_t(c)] = loc.data() + c * ls;
    const float* scratch = plane[size_t(C)];
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / n_bands, band = item % n_bands;
      const int64_t yo_begin = band * band_rows, yo_end = std::min(Ho0, yo_begin + band_rows);
      for (int64_t yo = yo_begin; yo < yo_end; ++yo) {
        // ---- count the labels of fine row yo into the local buffer
        std::fill(loc.begin(), loc.end(), 0.f);
        const int64_t y0 = yo * s0, y1 = std::min(H, y0 + s0);
        // cells whose s0 columns all lie inside the map take the unrolled path when s0 == S0
        const int64_t full_cells = (S0 > 0) ? std::min(Wo0, W / S0) : 0;
        for (int64_t y = y0; y < y1; ++y) {
          const T* row = labels + (n * H + y) * W;
          if constexpr (S0 > 0) {
            for (int64_t xo = 0; xo < full_cells; ++xo) {
              const T* seg = row + xo * S0;
              const int64_t v0 = int64_t(seg[0]);
              bool uniform = true;
              for (int i = 1; i < S0; ++i) uniform &= (int64_t(seg[i]) == v0);
              if (uniform) {
                plane[size_t(label_channel(v0, K, ignore))][xo] += float(S0);
              } else {
                for (int i = 0; i < S0; ++i)
                  plane[size_t(label_channel(int64_t(seg[i]), K, ignore))][xo] += 1.f;
              }
            }
          }
          for (int64_t xo = full_cells; xo < Wo0; ++xo) {
            const int64_t x0 = xo * s0, x1 = std::min(W, x0 + s0);
            // run-length counting: label maps are piecewise constant, most segments are one run
            int64_t cur = -1, run = 0;
            for (int64_t x = x0; x < x1; ++x) {
              const int64_t c = label_channel(int64_t(row[x]), K, ignore);
              if (c != cur) {
                if (run) plane[size_t(cur)][xo] += float(run);
                cur = c;
                run = 0;
              }
              ++run;
            }
            if (run) plane[size_t(cur)][xo] += float(run);
          }
        }
        bool row_bad = false;
        for (int64_t xo = 0; xo < Wo0; ++xo) row_bad |= scratch[xo] != 0.f;
        if (row_bad) {  // error path only: find the offending value
          for (int64_t y = y0; y < y1 && row_bad; ++y) {
            const T* row = labels + (n * H + y) * W;
            for (int64_t x = 0; x < std::min(W, Wo0 * s0); ++x) {
              const int64_t v = int64_t(row[x]);
              if ((v < 0 || v >= K) && v != ignore) {
                std::lock_guard<std::mutex> lock(bad_mutex);
                if (!bad_flag.load()) {
                  bad_value = v;
                  bad_flag.store(1);
                }
                row_bad = false;
                break;
              }
            }
          }
        }

        // ---- finish every row that fine row yo completes, from fine to coarse
        int64_t row_k = yo;  // row index at scale k
        for (int64_t k = 0; k < S; ++k) {
          const int64_t s = scales[k], Hk = Hos[k], Wk = Wos[k];
          if (k > 0) {
            // row_k of scale k is complete iff its last row at scale k-1 was just finished
            const int64_t r = s / scales[k - 1];
            const int64_t prev_row = row_k;
            row_k = prev_row / r;
            if (row_k >= Hk) break;  // crop policy: this row is dropped
            const int64_t last = std::min(Hos[k - 1] - 1, row_k * r + r - 1);
            if (prev_row != last) break;
          }
          // plane c of this row: the local buffer at the finest scale, the output otherwise
          float* const out_row = outs[k] + (n * C * Hk + row_k) * Wk;
          const int64_t pstride = (k == 0) ? ls : Hk * Wk;
          float* const base = (k == 0) ? loc.data() : out_row;
          // add raw counts into scale k+1 (zeroing its row on first contribution)
          if (k + 1 < S) {
            const int64_t r = scales[k + 1] / s, Hn = Hos[k + 1], Wn = Wos[k + 1];
            const int64_t row_n = row_k / r;
            if (row_n < Hn) {
              float* nbase = outs[k + 1] + (n * C * Hn + row_n) * Wn;
              const bool first = (row_k % r) == 0;
              for (int64_t c = 0; c < C; ++c) {
                const float* src = base + c * pstride;
                float* dst = nbase + c * Hn * Wn;
                if (first) std::memset(dst, 0, sizeof(float) * size_t(Wn));
                if (r == 2) {
                  const int64_t full = std::min(Wn, Wk / 2);
                  for (int64_t X = 0; X < full; ++X) dst[X] += src[2 * X] + src[2 * X + 1];
                  for (int64_t X = full; X < Wn; ++X)
                    for (int64_t x = 2 * X; x < std::min(Wk, 2 * X + 2); ++x) dst[X] += src[x];
                } else {
                  for (int64_t X = 0; X < Wn; ++X) {
                    float acc = 0.f;
                    for (int64_t x = X * r; x < std::min(Wk, X * r + r); ++x) acc += src[x];
                    dst[X] += acc;
                  }
                }
              }
            }
          }
          // pixels of edge cells outside the label map count as ignore
          const int64_t rows_in = clamp_len(H, row_k * s, s);
          float* ign = base + K * pstride;
          if (rows_in < s || Wk * s > W) {
            for (int64_t X = 0; X < Wk; ++X)
              ign[X] += float(s * s - rows_in * clamp_len(W, X * s, s));
          }
          // counts -> fractions (exact for power-of-two s; else one correctly rounded division)
          const float s2 = float(s * s);
          const bool pow2 = (s & (s - 1)) == 0;
          const float inv = 1.f / s2;
          for (int64_t c = 0; c < C; ++c) {
            const float* p = base + c * pstride;
            float* q = out_row + c * Hk * Wk;
            if (pow2)
              for (int64_t X = 0; X < Wk; ++X) q[X] = p[X] * inv;
            else
              for (int64_t X = 0; X < Wk; ++X) q[X] = p[X] / s2;
          }
        }
      }
    }
  });
  if (bad_flag.load()) {
    bad[0] = 1;
    bad[1] = bad_value;
  }
}

std::vector<at::Tensor> cpp_chain_cpu(const at::Tensor& labels_in, int64_t K, int64_t ignore,
                                      c10::IntArrayRef scales, c10::IntArrayRef hos,
                                      c10::IntArrayRef wos, int64_t num_threads) {
  TORCH_CHECK(labels_in.dim() == 3, "cpp_chain: labels must be (N, H, W), got ", labels_in.sizes());
  const int64_t S = int64_t(scales.size());
  TORCH_CHECK(S > 0 && int64_t(hos.size()) == S && int64_t(wos.size()) == S,
              "cpp_chain: scales, out_heights and out_widths must have one entry per scale");
  const at::Tensor labels = labels_in.contiguous();
  const int64_t N = labels.size(0), H = labels.size(1), W = labels.size(2);
  std::vector<at::Tensor> outs;
  std::vector<float*> out_ptrs;
  bool empty = labels.numel() == 0;
  for (int64_t k = 0; k < S; ++k) {
    outs.push_back(at::empty({N, K + 1, hos[k], wos[k]}, labels.options().dtype(at::kFloat)));
    out_ptrs.push_back(outs.back().data_ptr<float>());
    empty |= outs.back().numel() == 0;
  }
  if (empty) return outs;
  int64_t bad[2] = {0, 0};
  AT_DISPATCH_INTEGRAL_TYPES(labels.scalar_type(), "cpp_chain", [&] {
    const scalar_t* lab = labels.const_data_ptr<scalar_t>();
    const int nt = int(num_threads);
    switch (scales[0]) {
      case 2: chain_impl<scalar_t, 2>(lab, N, H, W, K, ignore, S, scales.data(), hos.data(), wos.data(), out_ptrs.data(), nt, bad); break;
      case 4: chain_impl<scalar_t, 4>(lab, N, H, W, K, ignore, S, scales.data(), hos.data(), wos.data(), out_ptrs.data(), nt, bad); break;
      case 8: chain_impl<scalar_t, 8>(lab, N, H, W, K, ignore, S, scales.data(), hos.data(), wos.data(), out_ptrs.data(), nt, bad); break;
      default: chain_impl<scalar_t, 0>(lab, N, H, W, K, ignore, S, scales.data(), hos.data(), wos.data(), out_ptrs.data(), nt, bad);
    }
  });
  TORCH_CHECK_VALUE(!bad[0], "label value ", bad[1], " is outside [0, ", K,
                    ") and is not the ignore value ", ignore);
  return outs;
}

}  // namespace

TORCH_LIBRARY(seethroughnet, m) {
  m.def(
      "cpp_chain(Tensor labels, int num_classes, int ignore_value, int[] scales, "
      "int[] out_heights, int[] out_widths, int num_threads) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(seethroughnet, CPU, m) { m.impl("cpp_chain", &cpp_chain_cpu); }
