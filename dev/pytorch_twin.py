#!/usr/bin/env python3
"""PyTorch twin of the lnfree GPT-2 engine: writes the fixtures the C++ CPU reference is tested against.

An independent implementation, in plain PyTorch (no transformers) and float64, of the computation specified in
doc/reference-conventions.md: GPT-2 forward with real or fixed-scale LayerNorm per path (ln2, ln1-QK, ln1-V, lnf),
the sigma estimator with its call order, Philox4x32-10 counter-based dropout, cross-entropy + auxiliary loss,
and AdamW / clipping / LR schedule / removal events for a short training trajectory. All gradients come from
autograd. Tensors are stored as F32 (I32 for token ids) in safetensors files written by a small writer below.

Run:  .venv/bin/python dev/pytorch_twin.py [--out test/fixtures]
Rerunning reproduces byte-identical files (fixed numpy seeds, single-threaded torch).
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)  # fixed reduction order, so reruns give byte-identical files
DT = torch.float64

PARAM_NAMES = ["wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
               "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"]
DECAY_NAMES = ["wte", "wpe", "ln1w", "qkvw", "attprojw", "ln2w", "fcw", "fcprojw", "lnfw"]  # all non-bias tensors
MODEL = {"L": 3, "C": 40, "NH": 5, "V": 97, "Vp": 128, "maxT": 24, "eot": 50}
MOMENTUM = {"ln1": 0.9, "ln2": 0.9, "lnf": 0.9}
LN1_CALLS, W_AUX, B, T = 3, 0.1, 3, 24
EMBEDDING, ATTENTION_PROBS, ATTENTION_RESIDUAL, MLP_RESIDUAL = 0, 1, 2, 3  # dropout sites


def param_shapes(L, C, Vp, maxT, **_):
    return {"wte": (Vp, C), "wpe": (maxT, C), "ln1w": (L, C), "ln1b": (L, C), "qkvw": (L, 3 * C, C),
            "qkvb": (L, 3 * C), "attprojw": (L, C, C), "attprojb": (L, C), "ln2w": (L, C), "ln2b": (L, C),
            "fcw": (L, 4 * C, C), "fcb": (L, 4 * C), "fcprojw": (L, C, 4 * C), "fcprojb": (L, C),
            "lnfw": (C,), "lnfb": (C,)}


# ----------------------------------------------------------------------------------------------------------------
# safetensors, by hand: u64 LE header length, JSON header (space-padded to a multiple of 8), raw LE bytes

def write_safetensors(path, tensors, config):
    """tensors: list of (name, np.ndarray of float32 or int32), in file order; config: dict -> __metadata__.config"""
    header, blobs, off = {"__metadata__": {"config": json.dumps(config, separators=(",", ":"))}}, [], 0
    for name, a in tensors:
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32"}[a.dtype]
        raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path + ".tmp", "wb") as f:  # a rerun that dies never leaves a half-written fixture
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    os.replace(path + ".tmp", path)


def read_safetensors(path):
    """-> (dict name -> np.ndarray, config dict); used to check the writer round-trips."""
    with open(path, "rb") as f:
        buf = f.read()
    n = struct.unpack("<Q", buf[:8])[0]
    header = json.loads(buf[8:8 + n])
    config = json.loads(header.pop("__metadata__")["config"])
    out = {}
    for name, d in header.items():
        b0, b1 = d["data_offsets"]
        dt = {"F32": "<f4", "I32": "<i4"}[d["dtype"]]
        out[name] = np.frombuffer(buf[8 + n + b0: 8 + n + b1], dtype=dt).reshape(d["shape"])
    return out, config


def f32(t):
    """float64 tensor/array -> float32 numpy (the stored value)"""
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().numpy()
    return np.asarray(t, dtype=np.float64).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# Philox4x32-10 in numpy uint64 arithmetic (each uint64 holds one uint32 value), vectorised over counters

PHILOX_M0, PHILOX_M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
PHILOX_W0, PHILOX_W1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
U32 = np.uint64(0xFFFFFFFF)
S32 = np.uint64(32)


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """counter words c0..c3 (arrays or ints), key words k0, k1 -> four uint64 arrays of uint32 values"""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) & U32 for c in (c0, c1, c2, c3))
    k0, k1 = np.uint64(k0) & U32, np.uint64(k1) & U32
    for r in range(10):
        if r:  # key bump between rounds
            k0, k1 = (k0 + PHILOX_W0) & U32, (k1 + PHILOX_W1) & U32
        p0, p1 = PHILOX_M0 * c0, PHILOX_M1 * c2  # 32x32 -> 64-bit products, exact in uint64
        hi0, lo0, hi1, lo1 = p0 >> S32, p0 & U32, p1 >> S32, p1 & U32
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def check_philox():
    kat = [((0, 0, 0, 0), (0, 0), (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
           ((0xffffffff,) * 4, (0xffffffff, 0xffffffff), (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
           ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
            (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1))]
    for ctr, key, want in kat:
        got = tuple(int(w) for w in philox4x32_10(*ctr, *key))
        assert got == want, (ctr, key, [hex(w) for w in got])
    print("check: Philox4x32-10 matches the 3 Random123 known-answer vectors")


def dropout_uniforms(n, seed, layer, site, micro_step, step):
    """u(e) for e = 0..n-1: counter (e>>2, layer<<4|site, micro_step, step), key (seed lo, seed hi), word e&3"""
    blocks = np.arange((n + 3) // 4, dtype=np.uint64)  # e >> 2
    words = philox4x32_10(blocks, (layer << 4) | site, micro_step, step, seed & 0xFFFFFFFF, seed >> 32)
    words = np.stack(words, axis=1).reshape(-1)[:n]  # word index e & 3
    return (words >> np.uint64(8)).astype(np.float64) * 2.0 ** -24  # in [0, 1)


class Dropout:
    def __init__(self, p, seed=0, step=0, micro_step=0):
        self.p, self.seed, self.step, self.micro_step = p, seed, step, micro_step
        self.kept = self.total = 0

    def __call__(self, x, site, layer):
        if self.p == 0:
            return x
        u = dropout_uniforms(x.numel(), self.seed, layer, site, self.micro_step, self.step)
        keep = torch.from_numpy(u >= self.p).reshape(x.shape)  # flat index = row-major index of x
        self.kept += int(keep.sum())
        self.total += keep.numel()
        return x * keep.to(DT) / (1.0 - self.p)


# ----------------------------------------------------------------------------------------------------------------
# The sigma estimator. Modules: ln1 of layers 0..L-1, ln2 of layers 0..L-1, lnf (index 2L).

class Estimator:
    def __init__(self, L, ema, sigma, momentum):
        self.ema = [float(v) for v in ema]
        self.sigma = [float(v) for v in sigma]
        self.mom = [momentum["ln1"]] * L + [momentum["ln2"]] * L + [momentum["lnf"]]
        self.used = []  # sigma held after each call, in call order (the functional cross-check replays these)

    def call(self, mod, stat, fixed):
        """one call of module `mod` by a path; returns the sigma held after the call"""
        m = self.mom[mod]
        self.ema[mod] = m * self.ema[mod] + (1.0 - m) * stat
        if not fixed:
            self.sigma[mod] = self.ema[mod]
        self.used.append(self.sigma[mod])
        return self.sigma[mod]


def module_stat(x):
    """mean over (b,t) of sqrt(var(x[b,t,:]) + 1e-5), population variance, no gradient.  x (B,T,C) -> float"""
    return torch.sqrt(x.detach().var(-1, unbiased=False) + 1e-5).mean().item()


def layer_norm(x, g, b, sigma=None):
    """x (B,T,C), g,b (C); sigma None: real LayerNorm (eps 1e-5); else fixed-scale: divide by the scalar sigma"""
    xc = x - x.mean(-1, keepdim=True)
    if sigma is None:
        return xc / torch.sqrt((xc * xc).mean(-1, keepdim=True) + 1e-5) * g + b
    return xc / sigma * g + b


def gelu_tanh(u):
    return 0.5 * u * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (u + 0.044715 * u ** 3)))


# ----------------------------------------------------------------------------------------------------------------
# The forward pass (one micro-batch)

def all_paths(L, fixed=False):
    return {"ln2_fixed": [fixed] * L, "ln1qk_fixed": [fixed] * L, "ln1v_fixed": [fixed] * L, "lnf_fixed": fixed}


def forward(P, idx, paths, est, drop, cfg=MODEL, ln1_calls=LN1_CALLS, trace=None):
    """P: params (float64); idx (B,T) long. Returns logits (B,T,Vp), h (B,T,C), stats (2L+1 floats).
    trace: optional list receiving (name, ln input x, gamma, beta, sigma) of every fixed LN path."""
    L, C, NH = cfg["L"], cfg["C"], cfg["NH"]
    Bb, Tt = idx.shape
    hd = C // NH
    causal = torch.ones(Tt, Tt, dtype=torch.bool).tril()  # (T,T): s <= t
    stats = [0.0] * (2 * L + 1)

    def norm(name, x, g, b, sigma, fixed):
        if fixed and trace is not None:
            trace.append((name, x.detach(), g.detach(), b.detach(), sigma))
        return layer_norm(x, g, b, sigma if fixed else None)

    x = P["wte"][idx] + P["wpe"][:Tt]  # (B,T,C)
    x = drop(x, EMBEDDING, 0)
    for l in range(L):
        # ln1: call 1 by the QK path, call 2 by the V path, (ln1_calls - 2) more by the V path (no-op EOT branch)
        stats[l] = st = module_stat(x)
        qk_fixed, v_fixed = paths["ln1qk_fixed"][l], paths["ln1v_fixed"][l]
        s_qk = est.call(l, st, qk_fixed)
        s_v = est.call(l, st, v_fixed)
        for _ in range(ln1_calls - 2):
            est.call(l, st, v_fixed)
        xqk = norm(f"ln1qk.{l}", x, P["ln1w"][l], P["ln1b"][l], s_qk, qk_fixed)  # (B,T,C)
        xv = norm(f"ln1v.{l}", x, P["ln1w"][l], P["ln1b"][l], s_v, v_fixed)  # (B,T,C)
        W, bias = P["qkvw"][l], P["qkvb"][l]  # (3C,C), (3C)
        q = xqk @ W[:C].T + bias[:C]  # (B,T,C)
        k = xqk @ W[C:2 * C].T + bias[C:2 * C]
        v = xv @ W[2 * C:].T + bias[2 * C:]
        q, k, v = (z.view(Bb, Tt, NH, hd).transpose(1, 2) for z in (q, k, v))  # (B,NH,T,hd)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)  # (B,NH,T,T)
        att = torch.softmax(att.masked_fill(~causal, float("-inf")), dim=-1)
        att = drop(att, ATTENTION_PROBS, l)
        y = (att @ v).transpose(1, 2).reshape(Bb, Tt, C)  # (B,T,C)
        a = y @ P["attprojw"][l].T + P["attprojb"][l]
        x = x + drop(a, ATTENTION_RESIDUAL, l)
        # ln2: one call
        stats[L + l] = st = module_stat(x)
        s2 = est.call(L + l, st, paths["ln2_fixed"][l])
        xn = norm(f"ln2.{l}", x, P["ln2w"][l], P["ln2b"][l], s2, paths["ln2_fixed"][l])
        u = xn @ P["fcw"][l].T + P["fcb"][l]  # (B,T,4C)
        m = gelu_tanh(u) @ P["fcprojw"][l].T + P["fcprojb"][l]  # (B,T,C)
        x = x + drop(m, MLP_RESIDUAL, l)
    h = x  # (B,T,C)
    stats[2 * L] = st = module_stat(h)
    sf = est.call(2 * L, st, paths["lnf_fixed"])
    xf = norm("lnf", h, P["lnfw"], P["lnfb"], sf, paths["lnf_fixed"])
    logits = xf @ P["wte"].T  # (B,T,Vp)
    return logits, h, stats


def loss_terms(logits, h, idx, targets, cfg=MODEL, ignore_eot=True):
    """-> per-token CE (B,T) at every position, CE mean over counted targets, unweighted aux loss"""
    V, eot = cfg["V"], cfg["eot"]
    logp = torch.log_softmax(logits[..., :V], dim=-1)  # (B,T,V)
    tok = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B,T)
    counted = (targets != eot) if ignore_eot else torch.ones_like(targets, dtype=torch.bool)
    ce = tok[counted].mean() if counted.any() else tok.sum() * 0.0
    s = torch.sqrt(h.var(-1, unbiased=False) + 1e-5)  # (B,T)
    tpos = torch.arange(idx.shape[1]).expand_as(idx)
    q = (tpos != 0) & (idx != eot)
    target = (s[q].mean() if q.any() else s.mean()).detach()
    aux = ((s - target) ** 2).mean()
    return tok, ce, aux


# ----------------------------------------------------------------------------------------------------------------
# An independent forward for cross-checking: torch.nn.functional building blocks; sigmas replayed from the main one

def forward_functional(P, idx, targets, paths, sigmas_used, drop, cfg=MODEL, ln1_calls=LN1_CALLS):
    L, C, NH, V, eot = cfg["L"], cfg["C"], cfg["NH"], cfg["V"], cfg["eot"]
    Bb, Tt = idx.shape
    center = torch.eye(C, dtype=DT) - 1.0 / C  # (C,C): x @ center = x - mean(x)
    it = iter(sigmas_used)

    def ln(x, g, b, fixed, sigma):
        if fixed:
            return (x @ center) / sigma * g + b
        return F.layer_norm(x, (C,), g, b, eps=1e-5)

    x = drop(F.embedding(idx, P["wte"]) + P["wpe"][:Tt], EMBEDDING, 0)
    for l in range(L):
        s_qk, s_v = next(it), next(it)
        for _ in range(ln1_calls - 2):
            next(it)
        qkv_a = F.linear(ln(x, P["ln1w"][l], P["ln1b"][l], paths["ln1qk_fixed"][l], s_qk), P["qkvw"][l], P["qkvb"][l])
        qkv_b = F.linear(ln(x, P["ln1w"][l], P["ln1b"][l], paths["ln1v_fixed"][l], s_v), P["qkvw"][l], P["qkvb"][l])
        q, k = qkv_a[..., :C], qkv_a[..., C:2 * C]
        v = qkv_b[..., 2 * C:]
        q, k, v = (z.reshape(Bb, Tt, NH, C // NH).permute(0, 2, 1, 3) for z in (q, k, v))
        if drop.p == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            sc = torch.einsum("bhtd,bhsd->bhts", q, k) / math.sqrt(C // NH)
            sc = sc + torch.full((Tt, Tt), float("-inf"), dtype=DT).triu(1)
            y = drop(F.softmax(sc, -1), ATTENTION_PROBS, l) @ v
        y = y.permute(0, 2, 1, 3).reshape(Bb, Tt, C)
        x = x + drop(F.linear(y, P["attprojw"][l], P["attprojb"][l]), ATTENTION_RESIDUAL, l)
        u = F.linear(ln(x, P["ln2w"][l], P["ln2b"][l], paths["ln2_fixed"][l], next(it)), P["fcw"][l], P["fcb"][l])
        x = x + drop(F.linear(F.gelu(u, approximate="tanh"), P["fcprojw"][l], P["fcprojb"][l]), MLP_RESIDUAL, l)
    logits = F.linear(ln(x, P["lnfw"], P["lnfb"], paths["lnf_fixed"], next(it)), P["wte"])
    ce = F.cross_entropy(logits[..., :V].reshape(-1, V), targets.reshape(-1), ignore_index=eot)
    s = torch.sqrt(torch.var_mean(x, -1, correction=0)[0] + 1e-5)
    q = (torch.arange(Tt) > 0) & (idx != eot)
    aux = F.mse_loss(s, torch.full_like(s, s[q].mean().item()))
    return logits, ce, aux


# ----------------------------------------------------------------------------------------------------------------
# Model, data

def make_model(rng, cfg=MODEL):
    shapes = param_shapes(**cfg)
    P = {}
    for n in PARAM_NAMES:
        sh = shapes[n]
        if n == "wte":
            a = rng.normal(0, 0.3, sh)
            a[cfg["V"]:] = 0.0
        elif n == "wpe":
            a = rng.normal(0, 0.1, sh)
        elif n.endswith("w") and n.startswith("ln"):
            a = 1.0 + rng.normal(0, 0.1, sh)
        elif n.endswith("w"):
            a = rng.normal(0, 0.08, sh)
        else:  # LN and linear biases
            a = rng.normal(0, 0.05, sh)
        P[n] = a.astype(np.float32)
    return P  # float32 numpy: the stored values; the twin computes from exactly these


def to64(P32, grad=True):
    return {n: torch.tensor(P32[n], dtype=DT, requires_grad=grad) for n in PARAM_NAMES}


def make_tokens(rng, shape, cfg=MODEL, eot_frac=0.1):
    tok = rng.integers(0, cfg["V"], size=shape)
    tok[rng.random(shape) < eot_frac] = cfg["eot"]
    return tok.astype(np.int32)


# ----------------------------------------------------------------------------------------------------------------
# Single forward/backward fixtures

def run_state(P32, idx, targets, paths, ema_in, sigma_in, drop):
    P = to64(P32)
    est = Estimator(MODEL["L"], ema_in, sigma_in, MOMENTUM)
    idx_t, tgt_t = torch.from_numpy(idx).long(), torch.from_numpy(targets).long()
    logits, h, stats = forward(P, idx_t, paths, est, drop)
    tok, ce, aux = loss_terms(logits, h, idx_t, tgt_t)
    (ce + W_AUX * aux).backward()
    return dict(P=P, est=est, logits=logits.detach(), tok=tok.detach(), ce=ce.item(), aux=aux.item(), stats=stats,
                grads={n: P[n].grad.clone() for n in PARAM_NAMES})


def state_fixture(path, P32, idx, targets, paths, ema_in, sigma_in, p, seed, step, micro_step):
    r = run_state(P32, idx, targets, paths, ema_in, sigma_in, Dropout(p, seed, step, micro_step))
    config = {"B": B, "T": T, **{k: paths[k] for k in ("ln2_fixed", "ln1qk_fixed", "ln1v_fixed", "lnf_fixed")},
              "dropout": p, "seed": seed, "step": step, "micro_step": micro_step, "momentum": MOMENTUM,
              "ln1_calls": LN1_CALLS, "w_aux": W_AUX, "eot": MODEL["eot"], "ignore_eot": True}
    tensors = [("idx", idx), ("targets", targets), ("sigma_ema_in", f32(ema_in)), ("sigma_in", f32(sigma_in)),
               ("logits", f32(r["logits"])), ("losses", f32(r["tok"])), ("loss", f32([r["ce"]])),
               ("aux", f32([r["aux"]])), ("stats", f32(r["stats"])), ("sigma_ema_out", f32(r["est"].ema)),
               ("sigma_out", f32(r["est"].sigma))]
    tensors += [("grad." + n, f32(r["grads"][n])) for n in PARAM_NAMES]
    write_safetensors(path, tensors, config)
    return r


def check_against_functional(name, P32, idx, targets, paths, r, drop):
    """same logits, loss, aux and gradients from the torch.nn.functional forward (sigmas replayed)"""
    P = to64(P32)
    idx_t, tgt_t = torch.from_numpy(idx).long(), torch.from_numpy(targets).long()
    logits, ce, aux = forward_functional(P, idx_t, tgt_t, paths, r["est"].used, drop)
    (ce + W_AUX * aux).backward()
    err = max((logits - r["logits"]).abs().max().item(), abs(ce.item() - r["ce"]), abs(aux.item() - r["aux"]))
    gerr = max(((P[n].grad - r["grads"][n]).abs().max() / (r["grads"][n].abs().max() + 1e-30)).item()
               for n in PARAM_NAMES)
    assert err < 1e-10 and gerr < 1e-9, (name, err, gerr)
    print(f"check: {name}: functional forward agrees (max |d logits,loss,aux| {err:.1e}, "
          f"max rel d grad {gerr:.1e})")


def check_affine(P32, idx, ema_in, sigma_in):
    """in an all-fixed model every LN output is an affine function of its input (real LN is not)"""
    trace = []
    with torch.no_grad():
        forward(to64(P32, False), torch.from_numpy(idx).long(), all_paths(MODEL["L"], True),
                Estimator(MODEL["L"], ema_in, sigma_in, MOMENTUM), Dropout(0), trace=trace)
    g = torch.Generator().manual_seed(0)
    worst, worst_real = 0.0, float("inf")
    for name, x, gam, bet, sigma in trace:
        x2 = torch.randn(x.shape, generator=g, dtype=DT) * 2.0 + 0.5
        for a in (-0.7, 0.3, 1.9):  # affine combinations a*x + (1-a)*x2
            mix = a * x + (1 - a) * x2
            lhs = layer_norm(mix, gam, bet, sigma)
            rhs = a * layer_norm(x, gam, bet, sigma) + (1 - a) * layer_norm(x2, gam, bet, sigma)
            worst = max(worst, (lhs - rhs).abs().max().item())
            lhs_r = layer_norm(mix, gam, bet)
            rhs_r = a * layer_norm(x, gam, bet) + (1 - a) * layer_norm(x2, gam, bet)
            worst_real = min(worst_real, (lhs_r - rhs_r).abs().max().item())
    assert len(trace) == 3 * MODEL["L"] + 1 and worst < 1e-12 and worst_real > 1e-3, (len(trace), worst, worst_real)
    print(f"check: all-fixed model: all {len(trace)} fixed LN paths are affine in their input "
          f"(max defect {worst:.1e}; real LN defect >= {worst_real:.2f})")


def check_estimator_v_before_qk(r, ema_in, sigma_in):
    """layer 1 of state_v_before_qk: QK real, V fixed. The V path divides by the sigma re-synced by call 1."""
    m, L = MOMENTUM["ln1"], MODEL["L"]
    st = r["stats"][1]
    e1 = m * ema_in[1] + (1 - m) * st
    e3 = m * (m * e1 + (1 - m) * st) + (1 - m) * st
    used_v = r["est"].used[1 * LN1_CALLS + 1]
    assert abs(r["est"].sigma[1] - e1) < 1e-14 and abs(r["est"].ema[1] - e3) < 1e-14 and used_v == e1
    assert r["est"].sigma[0] == sigma_in[0] and r["est"].sigma[L] == sigma_in[L]  # fully fixed modules frozen
    print(f"check: state_v_before_qk layer 1: V path divides by sigma after the QK call ({e1:.6f}, "
          f"sigma_in was {sigma_in[1]:.6f}); ema after 3 calls {e3:.6f}")


# ----------------------------------------------------------------------------------------------------------------
# Training trajectory

TRAJ = {"B": B, "T": T, "grad_accum": 2, "steps": 12, "lr": 1e-3, "min_lr": 5e-4, "warmup": 3,
        "schedule_length": 20, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01,
        "decay": DECAY_NAMES, "clip": 4.0, "dropout": 0.1, "seed": 1234, "momentum": MOMENTUM,
        "ln1_calls": LN1_CALLS, "w_aux": W_AUX, "eot": MODEL["eot"], "ignore_eot": True,
        "events": [{"kind": "ln2", "start": 1, "gap": 1}, {"kind": "ln1qk", "start": 4, "gap": 1},
                   {"kind": "ln1v", "start": 7, "gap": 1}, {"kind": "lnf", "start": 10, "gap": 0}]}


def lr_at(k, c=TRAJ):
    """k = completed optimizer steps; Hugging Face cosine_with_min_lr with warmup, progress clamped to 1"""
    W, S, lr, r = c["warmup"], c["schedule_length"], c["lr"], c["min_lr"] / c["lr"]
    if k < W:
        return lr * k / W
    return lr * (r + (1 - r) * 0.5 * (1 + math.cos(math.pi * min(1.0, (k - W) / (S - W)))))


def paths_at(k, c=TRAJ, L=MODEL["L"]):
    """removal events: layer i of an event's kind is fixed from step start + i*gap on"""
    paths = all_paths(L, False)
    for ev in c["events"]:
        if ev["kind"] == "lnf":
            paths["lnf_fixed"] = k >= ev["start"]
        else:
            key = {"ln2": "ln2_fixed", "ln1qk": "ln1qk_fixed", "ln1v": "ln1v_fixed"}[ev["kind"]]
            paths[key] = [k >= ev["start"] + i * ev["gap"] for i in range(L)]
    return paths


def trajectory_fixture(path, P32, tokens, ema_in, sigma_in, c=TRAJ):
    P = to64(P32)
    params = [P[n] for n in PARAM_NAMES]
    opt = torch.optim.AdamW([{"params": [P[n] for n in PARAM_NAMES if n in c["decay"]],
                              "weight_decay": c["weight_decay"]},
                             {"params": [P[n] for n in PARAM_NAMES if n not in c["decay"]], "weight_decay": 0.0}],
                            lr=c["lr"], betas=(c["beta1"], c["beta2"]), eps=c["eps"], foreach=False)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: lr_at(k, c) / c["lr"])
    est = Estimator(MODEL["L"], ema_in, sigma_in, c["momentum"])
    N, BT, GA = len(tokens), c["B"] * c["T"], c["grad_accum"]
    log = {"ce": [], "aux": [], "lr": [], "grad_norm": [], "sigma_after": []}
    for k in range(c["steps"]):
        paths = paths_at(k, c)  # removal events apply at the start of the step
        lr = opt.param_groups[0]["lr"]
        assert abs(lr - lr_at(k, c)) < 1e-15
        opt.zero_grad(set_to_none=False)
        ce_sum = aux_sum = 0.0
        for m in range(GA):
            s = ((k * GA + m) * BT) % (N - BT - 1)
            idx = torch.from_numpy(tokens[s:s + BT].reshape(c["B"], c["T"])).long()
            tgt = torch.from_numpy(tokens[s + 1:s + BT + 1].reshape(c["B"], c["T"])).long()
            logits, h, _ = forward(P, idx, paths, est, Dropout(c["dropout"], c["seed"], k, m),
                                   ln1_calls=c["ln1_calls"])
            _, ce, aux = loss_terms(logits, h, idx, tgt, ignore_eot=c["ignore_eot"])
            ((ce + c["w_aux"] * aux) / GA).backward()
            ce_sum, aux_sum = ce_sum + ce.item(), aux_sum + aux.item()
        gn = torch.nn.utils.clip_grad_norm_(params, c["clip"]).item()  # norm before clipping
        opt.step()
        sched.step()
        log["ce"].append(ce_sum / GA)
        log["aux"].append(aux_sum / GA)
        log["lr"].append(lr)
        log["grad_norm"].append(gn)
        log["sigma_after"].append(list(est.sigma))
        print(f"  step {k:2d}: lr {lr:.3e} ce {ce_sum / GA:.5f} aux {aux_sum / GA:.5f} grad_norm {gn:.5f}"
              f"{' (clipped)' if gn > c['clip'] else ''}")
    margin = min(abs(g - c["clip"]) for g in log["grad_norm"])
    assert margin > 1e-4, "a grad norm sits where torch's and the spec's clipping conditions differ"
    tensors = [("tokens", tokens), ("sigma_ema_in", f32(ema_in)), ("sigma_in", f32(sigma_in))]
    tensors += [(n, f32(log[n])) for n in ("ce", "aux", "lr", "grad_norm", "sigma_after")]
    tensors += [("final." + n, f32(P[n])) for n in PARAM_NAMES]
    write_safetensors(path, tensors, c)
    return log


# ----------------------------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="test/fixtures", help="directory for the *.safetensors fixtures")
    ap.add_argument("--check", metavar="DIR", help="regenerate into --out, then compare with the fixtures in DIR "
                    "(float tensors to 1e-6 relative, the rest exactly); exit 1 on any difference")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    out = lambda name: os.path.join(args.out, name + ".safetensors")
    L = MODEL["L"]

    check_philox()

    # model
    rng = np.random.default_rng(20250101)
    P32 = make_model(rng)
    write_safetensors(out("model"), [(n, P32[n]) for n in PARAM_NAMES], MODEL)

    # one batch for all single-step fixtures: rows of a token stream, targets shifted by one
    stream = make_tokens(rng, (B, T + 1))
    stream[1, 0] = MODEL["eot"]  # an EOT at t=0 of sequence 1
    idx, targets = np.ascontiguousarray(stream[:, :T]), np.ascontiguousarray(stream[:, 1:])

    # estimator state near the real statistics of this model on this batch; ema != sigma
    stat_probe = Estimator(L, [1.0] * (2 * L + 1), [1.0] * (2 * L + 1), MOMENTUM)
    with torch.no_grad():
        _, _, stats0 = forward(to64(P32, False), torch.from_numpy(idx).long(), all_paths(L), stat_probe, Dropout(0))
    stats0 = np.array(stats0)
    sigma_in = f32(stats0 * rng.uniform(0.85, 1.15, 2 * L + 1)).astype(np.float64)
    ema_in = f32(stats0 * rng.uniform(0.85, 1.15, 2 * L + 1)).astype(np.float64)
    print("real statistics of the model on the fixture batch:", np.round(stats0, 4))

    fixed_ln2 = {**all_paths(L), "ln2_fixed": [True] * L}
    cases = [
        ("state_all_real", all_paths(L), 0.0, 0, 0),
        ("state_ln2_fixed", fixed_ln2, 0.0, 0, 0),
        ("state_ln2_ln1qk_fixed", {**fixed_ln2, "ln1qk_fixed": [True] * L}, 0.0, 0, 0),
        ("state_all_fixed", all_paths(L, True), 0.0, 0, 0),
        ("state_v_before_qk", {"ln2_fixed": [True] * L, "ln1qk_fixed": [True, False, False],
                               "ln1v_fixed": [True, True, False], "lnf_fixed": False}, 0.1, 7, 1),
    ]
    results = {}
    for name, paths, p, step, micro_step in cases:
        r = state_fixture(out(name), P32, idx, targets, paths, ema_in, sigma_in, p, 1234, step, micro_step)
        results[name] = r
        print(f"{name}: ce {r['ce']:.6f} aux {r['aux']:.6f} |logits|max {r['logits'].abs().max():.3f}")
        check_against_functional(name, P32, idx, targets, paths, r, Dropout(p, 1234, step, micro_step))

    # self-checks
    check_affine(P32, idx, ema_in, sigma_in)
    check_estimator_v_before_qk(results["state_v_before_qk"], ema_in, sigma_in)
    d = Dropout(0.1, 1234, 7, 1)
    with torch.no_grad():
        forward(to64(P32, False), torch.from_numpy(idx).long(), all_paths(L), Estimator(L, ema_in, sigma_in, MOMENTUM),
                d)
    rate = 1 - d.kept / d.total
    assert abs(rate - 0.1) < 5 * math.sqrt(0.1 * 0.9 / d.total), rate
    print(f"check: dropout p=0.1 dropped {rate:.4f} of {d.total} elements")
    u = dropout_uniforms(1 << 20, 42, 0, 0, 0, 0)
    assert abs(u.mean() - 0.5) < 2e-3 and u.min() >= 0 and u.max() < 1
    print(f"check: 2^20 Philox uniforms: mean {u.mean():.4f}, min {u.min():.2e}, max {u.max():.7f}")

    # trajectory
    rng_t = np.random.default_rng(20250102)
    tokens = make_tokens(rng_t, (2048,))
    print("trajectory:")
    log = trajectory_fixture(out("trajectory"), P32, tokens, ema_in, sigma_in)
    print(f"  clipped on {sum(g > TRAJ['clip'] for g in log['grad_norm'])} of {TRAJ['steps']} steps")

    # the files read back
    total = 0
    for name in ["model"] + [c[0] for c in cases] + ["trajectory"]:
        tens, cfg = read_safetensors(out(name))
        size = os.path.getsize(out(name))
        total += size
        print(f"wrote {out(name)}: {size} bytes, {len(tens)} tensors")
    back, _ = read_safetensors(out("model"))
    assert all(np.array_equal(back[n], P32[n]) for n in PARAM_NAMES)
    print(f"total {total} bytes")
    if args.check:
        sys.exit(compare_fixtures(args.out, args.check, ["model"] + [c[0] for c in cases] + ["trajectory"]))


def compare_fixtures(new_dir, committed_dir, names):
    """1 if any fixture in committed_dir differs from the one just written to new_dir, else 0"""
    failed = 0
    for name in names:
        new, new_cfg = read_safetensors(os.path.join(new_dir, name + ".safetensors"))
        old, old_cfg = read_safetensors(os.path.join(committed_dir, name + ".safetensors"))
        problems = [] if new_cfg == old_cfg else ["config differs"]
        problems += [f"tensor set differs: {sorted(set(new) ^ set(old))}"] if set(new) != set(old) else []
        for t in sorted(set(new) & set(old)):
            a, b = new[t].astype(np.float64), old[t].astype(np.float64)
            if a.shape != b.shape:
                problems.append(f"{t}: shape {a.shape} != {b.shape}")
            elif new[t].dtype.kind == "f":
                err = np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)
                if err > 1e-6:
                    problems.append(f"{t}: relative difference {err:.2e}")
            elif not np.array_equal(a, b):
                problems.append(f"{t}: values differ")
        print(f"fixture {name}: " + ("current" if not problems else "STALE: " + "; ".join(problems)))
        failed += bool(problems)
    print(f"fixtures: {len(names) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    main()
