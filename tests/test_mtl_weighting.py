"""Loss weighting and gradient combination against the papers' claims and closed forms."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from algorithms import mtl_weighting as mtw


def test_module_is_not_listed_as_a_continual_method():
    assert not hasattr(mtw, "NAME") and not hasattr(mtw, "make")


def test_uncertainty_log_variance_grows_for_the_larger_loss_scale():
    # shared theta, task 1 on a 100x larger loss scale than task 0
    def losses(theta):
        fit = jnp.sum((theta - 1.0) ** 2) + 0.1
        return jnp.stack([fit, 100.0 * fit])

    params = {"theta": jnp.zeros(3), "s": jnp.zeros(2)}
    opt = optax.adam(0.05)

    def step(carry, _):
        p, o = carry
        g = jax.grad(lambda q: mtw.uncertainty_loss(losses(q["theta"]), q["s"]))(p)
        u, o = opt.update(g, o, p)
        return (optax.apply_updates(p, u), o), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=4000)
    s = np.asarray(params["s"])
    assert s[1] > s[0] + 4.0  # log(100) apart
    # at the optimum sigma^2 = 2 L for classification: s_t = log(2 L_t)
    np.testing.assert_allclose(s, np.log(2 * np.asarray(losses(params["theta"]))), atol=0.05)
    w = mtw.uncertainty_weights(params["s"])
    assert w[1] < w[0]


def test_uncertainty_regression_form_has_half_factor():
    losses, s = jnp.array([2.0, 2.0]), jnp.array([0.0, 0.0])
    value = mtw.uncertainty_loss(losses, s, jnp.array([False, True]))
    np.testing.assert_allclose(value, 2.0 + 1.0)
    # regression optimum: s = log L
    g = jax.grad(lambda v: mtw.uncertainty_loss(losses, v, jnp.array([False, True])))(
        jnp.log(jnp.array([4.0, 2.0])))
    np.testing.assert_allclose(g, 0.0, atol=1e-6)


def test_dwa_equal_ratios_give_equal_weights():
    w = mtw.dwa_weights(jnp.array([0.5, 2.0, 8.0]), jnp.array([1.0, 4.0, 16.0]))
    np.testing.assert_allclose(w, 1.0, rtol=1e-6)
    w = mtw.dwa_weights(jnp.array([1.0, 0.5]), jnp.array([1.0, 1.0]), temperature=2.0)
    np.testing.assert_allclose(w.sum(), 2.0, rtol=1e-6)
    assert w[0] > w[1]  # the task whose loss fell less gets more weight
    np.testing.assert_allclose(w, 2 * jax.nn.softmax(jnp.array([0.5, 0.25])), rtol=1e-6)


def test_gradnorm_weight_moves_to_the_slower_task():
    # one shared layer W; task 0 has a 100x larger loss scale and dominates training
    a, b = jnp.array([1.0, 0.0]), jnp.array([0.3, 1.0])

    def losses(w_mat):
        return jnp.stack([100.0 * jnp.sum((w_mat @ a - 1.0) ** 2), jnp.sum((w_mat @ b + 1.0) ** 2)])

    w_mat = jnp.zeros((3, 2))
    init = losses(w_mat)

    def step(carry, _):
        w_mat, weights = carry
        jac = jax.jacrev(losses)(w_mat)  # [T, 3, 2]
        norms = jnp.sqrt(jnp.sum(jac**2, axis=(1, 2)))
        new_weights = mtw.gradnorm_update(weights, norms, losses(w_mat), init, alpha=1.5, lr=0.01)
        w_mat = w_mat - 1e-3 * jnp.tensordot(weights, jac, 1)
        return (w_mat, new_weights), losses(w_mat) / init

    (w_mat, weights), rates = jax.lax.scan(step, (w_mat, jnp.ones(2)), None, length=200)
    assert rates[-1, 1] > rates[-1, 0]  # task 1 trains slower (loss ratio higher)
    assert weights[1] > 1.0 > weights[0]  # and GradNorm gives it the larger weight
    np.testing.assert_allclose(weights.sum(), 2.0, rtol=1e-5)


def test_gradnorm_equalises_weighted_gradient_norms():
    norms, losses = jnp.array([10.0, 1.0]), jnp.array([1.0, 1.0])
    weights = jax.lax.fori_loop(
        0, 2000,
        lambda _, w: mtw.gradnorm_update(w, norms, losses, losses, alpha=1.5, lr=0.001),
        jnp.ones(2),
    )
    g = weights * norms  # equal training rates: the target is equal weighted norms
    np.testing.assert_allclose(g[0], g[1], rtol=0.1)
    np.testing.assert_allclose(weights, [2 / 11, 20 / 11], rtol=0.1)


def test_per_task_grads_match_separate_backward_passes():
    def losses(p, x):
        return jnp.stack([jnp.sum(jnp.sin(p["w"] * x)), jnp.sum((p["w"] - x) ** 2)])

    params, x = {"w": jnp.arange(3.0)}, jnp.array([0.5, -1.0, 2.0])
    jac = mtw.per_task_grads(losses, params, x)
    for t in range(2):
        g = jax.grad(lambda p, t=t: losses(p, x)[t])(params)
        np.testing.assert_allclose(jac["w"][t], g["w"], rtol=1e-6)
    assert mtw.flatten_task_grads(jac).shape == (2, 3)


@pytest.mark.parametrize("seed", range(20))
def test_pcgrad_result_never_conflicts(seed):
    grads = jax.random.normal(jax.random.key(seed), (2, 7))
    out = jax.jit(mtw.pcgrad)(grads, jax.random.key(seed + 100))
    assert jnp.all(grads @ out >= -1e-5)


def test_pcgrad_projects_only_conflicts():
    aligned = jnp.array([[1.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(mtw.pcgrad(aligned, jax.random.key(0)), aligned.sum(0))
    conflict = jnp.array([[1.0, 0.0], [-1.0, 1.0]])
    # g0 -> g0 - (-1/2) g1 = (0.5, 0.5); g1 -> g1 - (-1) g0 = (0, 1)
    np.testing.assert_allclose(mtw.pcgrad(conflict, jax.random.key(0)), [0.5, 1.5], atol=1e-6)


def _pcgrad_paper(grads: np.ndarray, orders) -> np.ndarray:
    """Yu et al. 2020, Alg. 1 in numpy: ``orders[i]`` lists the tasks other than i."""
    out = []
    for i, order in enumerate(orders):
        g = grads[i].copy()
        for j in order:
            dot = g @ grads[j]
            if dot < 0:
                g = g - dot / (grads[j] @ grads[j]) * grads[j]
        out.append(g)
    return np.sum(out, axis=0)


def test_pcgrad_projects_only_onto_the_other_tasks():
    # three tasks where g_0, half projected, conflicts with the original g_0: projecting
    # that off too (visiting j = i) gives a result no ordering of the others can give
    grads = np.array([[-1.573, -0.375], [-0.594, -1.137], [1.688, 0.880]])
    others = [[j for j in range(3) if j != i] for i in range(3)]
    allowed = [
        _pcgrad_paper(grads, orders)
        for orders in itertools.product(*(itertools.permutations(o) for o in others))
    ]
    for seed in range(16):
        out = np.asarray(jax.jit(mtw.pcgrad)(jnp.asarray(grads), jax.random.key(seed)))
        assert min(np.abs(out - a).max() for a in allowed) < 1e-5, (seed, out)


@pytest.mark.parametrize("seed", range(10))
def test_mgda_matches_two_task_closed_form(seed):
    g = jax.random.normal(jax.random.key(seed), (2, 5))
    g = g.at[1].multiply(1.0 + seed)  # include lopsided scales (a clipped vertex)
    np.testing.assert_allclose(
        jax.jit(mtw.mgda_weights)(g), mtw.two_task_min_norm(g[0], g[1]), atol=1e-5
    )


def test_mgda_three_tasks_beats_a_simplex_grid():
    g = jax.random.normal(jax.random.key(3), (3, 4))
    alpha = mtw.mgda_weights(g, iters=500)
    np.testing.assert_allclose(alpha.sum(), 1.0, rtol=1e-6)
    assert jnp.all(alpha >= 0)
    grid = np.array([(a, b, 1 - a - b)
                     for a, b in itertools.product(np.linspace(0, 1, 101), repeat=2) if a + b <= 1])
    best = float(np.min(np.sum((grid @ np.asarray(g)) ** 2, axis=1)))
    assert float(jnp.sum((alpha @ g) ** 2)) <= best + 1e-4
