"""Data with ground truth for the third-party benchmark (benchmarks/third_party.py), made on this machine and
deterministic by seed: nothing is downloaded.

- Text lines rendered with the DejaVu fonts (Debian's fonts-dejavu-core), in several sizes and colours, with their
  strings; half turned 180 degrees for the direction classifier (label 1 = 180, as PP-OCR's cls: labels 0 and 180).
- Text pages: lines placed on a page, with each line's box; the ground-truth text mask is the boxes shrunk as PP-OCR's
  DB training shrinks them (offset = area * (1 - 0.4^2) / perimeter), which is what its probability map marks.
- Speech from espeak-ng (`make espeak-ng` installs it) between stretches of silence, with noise, at 16 kHz, and a
  speech / no-speech label per 512-sample frame (Silero VAD v5's window at 16 kHz).

Images come back as uint8 RGB arrays (H, W, 3); ocr_line_input and ocr_page_input turn them into the models' inputs
the way rapidocr-onnxruntime's text_cls.py / text_rec.py / text_det.py do.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "DejaVuSansCondensed.ttf")
SIZES = (18, 24, 32, 40)
# Ink and paper colours: dark on light and light on dark, as photographed documents and signs have.
COLOURS = (((20, 20, 20), (245, 245, 240)), ((10, 30, 120), (255, 255, 255)), ((120, 10, 10), (250, 240, 220)),
           ((240, 240, 240), (30, 30, 40)), ((0, 90, 0), (230, 240, 230)))
WORDS = ("edge", "model", "int8", "text", "line", "page", "quant", "speed", "device", "bundle", "gate", "report", "2026",
         "ocr", "sample", "label", "vector", "onnx", "float", "north", "river", "stone", "light", "paper", "seven", "42")
# PP-OCR's DB: the text region of the probability map is the box shrunk by this ratio (DBNet's shrink_ratio).
DB_SHRINK_RATIO = 0.4
SAMPLE_RATE = 16_000
VAD_WINDOW = 512


def fonts() -> list[Path]:
    found = [FONT_DIR / name for name in FONTS if (FONT_DIR / name).is_file()]
    if not found:
        raise FileNotFoundError(f"no DejaVu font in {FONT_DIR}; install Debian's fonts-dejavu-core")
    return found


def random_text(rng: np.random.Generator, words: tuple[int, int] = (1, 4), charset: str | None = None) -> str:
    """A few words, or with `charset` a string of 3 to 12 of its characters (a recognizer with a small dictionary)."""
    if charset:
        return "".join(rng.choice(list(charset), size=int(rng.integers(3, 13))))
    return " ".join(rng.choice(WORDS, size=int(rng.integers(words[0], words[1] + 1))))


@dataclass
class TextLine:
    image: np.ndarray  # (H, W, 3) uint8
    text: str
    rotated: bool      # turned 180 degrees


def render_line(text: str, rng: np.random.Generator, rotate: bool = False) -> TextLine:
    """One line of text, tightly cropped with a small margin, in a random font, size and colour pair."""
    font = ImageFont.truetype(str(rng.choice(fonts())), int(rng.choice(SIZES)))
    ink, paper = COLOURS[int(rng.integers(len(COLOURS)))]
    left, top, right, bottom = font.getbbox(text)
    margin = int(rng.integers(2, 8))
    image = Image.new("RGB", (right - left + 2 * margin, bottom - top + 2 * margin), paper)
    ImageDraw.Draw(image).text((margin - left, margin - top), text, font=font, fill=ink)
    if rotate:
        image = image.rotate(180)
    return TextLine(np.asarray(image), text, rotate)


def text_lines(count: int, seed: int, rotated_share: float = 0.0, charset: str | None = None) -> list[TextLine]:
    """`count` rendered lines; a `rotated_share` of them turned 180 degrees (the cls model's data: half)."""
    rng = np.random.default_rng(seed)
    return [render_line(random_text(rng, charset=charset), rng, rotate=bool(rng.random() < rotated_share)) for _ in range(count)]


def ocr_line_input(image: np.ndarray, height: int = 48, max_width: int = 192) -> np.ndarray:
    """rapidocr's line preprocessing (text_cls.py, text_rec.py): resize to `height` keeping the aspect ratio, width at
    most `max_width`, zero-padded on the right, (x / 255 - 0.5) / 0.5, CHW float32."""
    h, w = image.shape[:2]
    width = min(max_width, int(np.ceil(height * w / h)))
    resized = np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR), np.float32)
    out = np.zeros((3, height, max_width), np.float32)
    out[:, :, :width] = (resized.transpose(2, 0, 1) / 255 - 0.5) / 0.5
    return out


def cls_dataset(count: int, seed: int, width: int = 192) -> dict[str, np.ndarray]:
    """x (N, 3, 48, width) and y (N,): 0 upright, 1 turned 180 degrees (half of them)."""
    lines = text_lines(count, seed, rotated_share=0.5)
    return {"x": np.stack([ocr_line_input(line.image, 48, width) for line in lines]),
            "y": np.array([int(line.rotated) for line in lines], np.int64)}


def encode_strings(texts: list[str], charset: list[str]) -> np.ndarray:
    """CTC labels: each character's index in the recognizer's dictionary + 1 (0 is the blank), padded with -1."""
    index = {c: i + 1 for i, c in enumerate(charset)}
    missing = sorted({c for text in texts for c in text if c not in index})
    if missing:
        raise ValueError(f"characters not in the dictionary: {''.join(missing)!r}")
    width = max([len(t) for t in texts] + [1])
    out = np.full((len(texts), width), -1, np.int64)
    for row, text in enumerate(texts):
        out[row, :len(text)] = [index[c] for c in text]
    return out


def rec_dataset(count: int, seed: int, charset: list[str], width: int = 320) -> dict[str, np.ndarray]:
    """x (N, 3, 48, width) and y (N, L) CTC labels of the rendered strings (characters drawn from `charset`)."""
    lines = text_lines(count, seed, charset="".join(c for c in charset if c.strip()))
    return {"x": np.stack([ocr_line_input(line.image, 48, width) for line in lines]),
            "y": encode_strings([line.text for line in lines], charset)}


def shrink_box(box: tuple[int, int, int, int], ratio: float = DB_SHRINK_RATIO) -> tuple[int, int, int, int]:
    """DBNet's shrink of a text box: inward by area * (1 - ratio^2) / perimeter on every side."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    offset = w * h * (1 - ratio ** 2) / max(2 * (w + h), 1)
    return (int(round(x1 + offset)), int(round(y1 + offset)), int(round(x2 - offset)), int(round(y2 - offset)))


@dataclass
class TextPage:
    image: np.ndarray                       # (H, W, 3) uint8
    boxes: list[tuple[int, int, int, int]]  # x1, y1, x2, y2 of each line
    texts: list[str]

    def mask(self, ratio: float = DB_SHRINK_RATIO) -> np.ndarray:
        """(H, W) uint8: 1 inside each line's shrunk box."""
        out = np.zeros(self.image.shape[:2], np.uint8)
        for box in self.boxes:
            x1, y1, x2, y2 = shrink_box(box, ratio)
            out[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = 1
        return out


def text_page(rng: np.random.Generator, size: tuple[int, int] = (320, 320), lines: tuple[int, int] = (2, 6)) -> TextPage:
    """Lines placed top to bottom at random offsets on a plain page, none overlapping."""
    height, width = size
    ink, paper = COLOURS[int(rng.integers(len(COLOURS)))]
    page = Image.new("RGB", (width, height), paper)
    draw = ImageDraw.Draw(page)
    boxes, texts, y = [], [], int(rng.integers(4, 20))
    for _ in range(int(rng.integers(lines[0], lines[1] + 1))):
        font = ImageFont.truetype(str(rng.choice(fonts())), int(rng.choice(SIZES)))
        text = random_text(rng)
        left, top, right, bottom = font.getbbox(text)
        if right - left >= width - 8:
            continue
        if y + bottom - top > height - 4:
            break
        x = int(rng.integers(4, width - (right - left) - 3))
        draw.text((x - left, y - top), text, font=font, fill=ink)
        boxes.append((x, y, x + right - left, y + bottom - top))
        texts.append(text)
        y += bottom - top + int(rng.integers(6, 30))
    return TextPage(np.asarray(page), boxes, texts)


def ocr_page_input(image: np.ndarray, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)) -> np.ndarray:
    """A page as PP-OCR det takes it: sides multiples of 32 (the page sizes here are), (x / 255 - mean) / std, CHW.
    rapidocr-onnxruntime 1.4.4's config.yaml sets the mean and std (check them against the wheel's)."""
    if image.shape[0] % 32 or image.shape[1] % 32:
        raise ValueError(f"page of {image.shape[:2]}: PP-OCR det needs sides that are multiples of 32")
    x = image.astype(np.float32).transpose(2, 0, 1) / 255
    return ((x - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]).astype(np.float32)


def det_dataset(count: int, seed: int, size: tuple[int, int] = (320, 320)) -> dict[str, np.ndarray]:
    """x (N, 3, H, W) pages and y (N, 1, H, W) their DB text masks (the mask_iou metric's labels)."""
    rng = np.random.default_rng(seed)
    pages = [text_page(rng, size) for _ in range(count)]
    return {"x": np.stack([ocr_page_input(p.image) for p in pages]), "y": np.stack([p.mask()[None] for p in pages])}


# --- speech for the VAD ---------------------------------------------------------------------------------------------

def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(text: str, voice: str = "en", speed: int = 160, pitch: int = 50) -> np.ndarray:
    """espeak-ng's speech of `text` as float32 at SAMPLE_RATE (espeak-ng writes 22050 Hz; resampled with scipy)."""
    from math import gcd

    from scipy.io import wavfile
    from scipy.signal import resample_poly

    if not espeak_available():
        raise FileNotFoundError("espeak-ng is not installed; run `make espeak-ng` (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory(prefix="edgekd-espeak-") as folder:
        wav = Path(folder) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), text],
                       check=True, capture_output=True, timeout=60)
        rate, samples = wavfile.read(wav)
    samples = samples.astype(np.float32) / np.iinfo(samples.dtype).max if samples.dtype.kind == "i" else samples.astype(np.float32)
    divisor = gcd(rate, SAMPLE_RATE)
    return resample_poly(samples, SAMPLE_RATE // divisor, rate // divisor).astype(np.float32)


@dataclass
class SpeechClip:
    audio: np.ndarray   # (samples,) float32 at SAMPLE_RATE, a whole number of VAD windows
    labels: np.ndarray  # (frames,) uint8: 1 where a VAD_WINDOW frame holds speech
    texts: list[str]


def frame_labels(clean: np.ndarray, window: int = VAD_WINDOW, floor: float = 0.05) -> np.ndarray:
    """1 for each frame whose clean-speech RMS is above `floor` of the loudest frame's: where the voice is heard (the
    pauses espeak-ng leaves between words count as silence)."""
    frames = clean[: len(clean) // window * window].reshape(-1, window)
    rms = np.sqrt((frames.astype(np.float64) ** 2).mean(1))
    return (rms > floor * max(rms.max(), 1e-12)).astype(np.uint8)


def speech_clip(rng: np.random.Generator, utterances: tuple[int, int] = (2, 4), snr_db: tuple[float, float] = (5, 25),
                speak_fn=speak) -> SpeechClip:
    """Utterances between 0.3 to 1.5 s stretches of silence, with white noise at a random SNR over the speech."""
    clean_pieces, texts = [], []
    for _ in range(int(rng.integers(utterances[0], utterances[1] + 1))):
        silence = np.zeros(int(rng.uniform(0.3, 1.5) * SAMPLE_RATE), np.float32)
        text = random_text(rng, (2, 6))
        voice = speak_fn(text, speed=int(rng.integers(130, 190)), pitch=int(rng.integers(30, 70)))
        clean_pieces += [silence, voice]
        texts.append(text)
    clean_pieces.append(np.zeros(int(rng.uniform(0.3, 1.5) * SAMPLE_RATE), np.float32))
    clean = np.concatenate(clean_pieces)
    clean = np.pad(clean, (0, -len(clean) % VAD_WINDOW))
    labels = frame_labels(clean)
    speech_power = float((clean[np.repeat(labels, VAD_WINDOW).astype(bool)] ** 2).mean()) if labels.any() else 1e-4
    noise = rng.standard_normal(len(clean)).astype(np.float32) * np.sqrt(speech_power / 10 ** (rng.uniform(*snr_db) / 10))
    return SpeechClip((clean + noise).astype(np.float32), labels, texts)


def vad_dataset(clips: int, seed: int, speak_fn=speak) -> dict[str, np.ndarray]:
    """The clips' frames as one batch (input (N, 512)), their labels (y (N,)), and where each clip starts (a recurrent
    model is run frame after frame within a clip, its state carried, and reset at each clip's start)."""
    rng = np.random.default_rng(seed)
    made = [speech_clip(rng, speak_fn=speak_fn) for _ in range(clips)]
    frames = [clip.audio.reshape(-1, VAD_WINDOW) for clip in made]
    starts = np.cumsum([0] + [len(f) for f in frames[:-1]])
    return {"input": np.concatenate(frames), "y": np.concatenate([clip.labels for clip in made]).astype(np.int64),
            "clip_starts": starts.astype(np.int64)}
