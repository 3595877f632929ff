import torch

from edgekd.train.config import TrainConfig
from edgekd.train.trainer import cross_entropy_loss, train


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(64, 5, generator=g), torch.randint(0, 3, (64,), generator=g)


def test_resume_continues_from_the_last_epoch_and_ends_like_an_uninterrupted_run(tmp_path):
    x, y = _data()
    cfg = TrainConfig(epochs=3, batch_size=16, lr=0.1, amp="off")
    torch.manual_seed(0)
    straight = torch.nn.Linear(5, 3)
    train(straight, x, y, cfg, cross_entropy_loss(), seed=1)

    torch.manual_seed(0)
    partial = torch.nn.Linear(5, 3)
    _train_two_of_three(partial, x, y, cfg, tmp_path / "q.pt")
    assert int(torch.load(tmp_path / "q.pt", weights_only=True)["epoch"]) == 2
    torch.manual_seed(123)
    resumed = torch.nn.Linear(5, 3)
    result = train(resumed, x, y, cfg, cross_entropy_loss(), seed=1, checkpoint=tmp_path / "q.pt")
    assert result.resumed_from_epoch == 2 and result.epochs_run == 1
    assert torch.allclose(resumed.weight, straight.weight, atol=1e-6)


def _train_two_of_three(model, x, y, cfg, checkpoint):
    """Run the 3-epoch job but stop after epoch 2, the way a kill would, by raising from the loss."""
    calls = {"n": 0}
    steps_per_epoch = len(y) // cfg.batch_size
    base = cross_entropy_loss()

    def loss(out, idx, labels):
        calls["n"] += 1
        if calls["n"] > 2 * steps_per_epoch:
            raise KeyboardInterrupt
        return base(out, idx, labels)

    try:
        train(model, x, y, cfg, loss, seed=1, checkpoint=checkpoint)
    except KeyboardInterrupt:
        pass


def test_a_checkpoint_of_another_job_is_not_resumed(tmp_path):
    x, y = _data()
    train(torch.nn.Linear(5, 3), x, y, TrainConfig(epochs=1, amp="off"), cross_entropy_loss(), seed=1,
          checkpoint=tmp_path / "p.pt")
    result = train(torch.nn.Linear(5, 3), x, y, TrainConfig(epochs=2, amp="off"), cross_entropy_loss(), seed=1,
                   checkpoint=tmp_path / "p.pt")
    assert result.resumed_from_epoch == 0 and result.epochs_run == 2


def test_a_finished_job_resumed_records_no_loss_rather_than_nan(tmp_path):
    """Resuming a job whose every epoch is done trains nothing: final_loss is None (null in
    manifest.json), not NaN, which is not JSON."""
    x, y = _data()
    cfg = TrainConfig(epochs=1, batch_size=16, lr=0.1, amp="off")
    model = torch.nn.Linear(5, 3)
    assert train(model, x, y, cfg, cross_entropy_loss(), seed=1, checkpoint=tmp_path / "q.pt").final_loss > 0
    again = train(model, x, y, cfg, cross_entropy_loss(), seed=1, checkpoint=tmp_path / "q.pt")
    assert again.epochs_run == 0 and again.final_loss is None and again.summary()["final_loss"] is None
