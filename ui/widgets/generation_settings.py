"""The generation settings of the Chat tab, starting from the loaded model's genai_config."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QSpinBox, QWidget

from app.chat import GenerationSettings


class SettingsBox(QGroupBox):
    """The generation settings, starting from the loaded model's genai_config."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Generation", parent)
        self.max_length = QSpinBox()
        self.max_length.setRange(1, 512)
        self.sample = QComboBox()
        self.sample.addItems(["Greedy", "Sampling"])
        self.temperature = _spin(0.01, 5.0, 0.05, 2)
        self.top_p = _spin(0.01, 1.0, 0.05, 2)
        self.top_k = QSpinBox()
        self.top_k.setRange(0, 1000)
        self.repetition_penalty = _spin(0.5, 3.0, 0.05, 2)
        self.seed = QSpinBox()
        self.seed.setRange(-1, 2**31 - 1)
        self.seed.setSpecialValueText("random")
        form = QFormLayout(self)
        for label, widget in (
            ("Max length", self.max_length),
            ("Decoding", self.sample),
            ("Temperature", self.temperature),
            ("Top-p", self.top_p),
            ("Top-k", self.top_k),
            ("Repetition penalty", self.repetition_penalty),
            ("Seed", self.seed),
        ):
            form.addRow(label, widget)
        self.sample.currentIndexChanged.connect(self._enable)
        self.show_settings(GenerationSettings(), 512)

    def show_settings(self, settings: GenerationSettings, context: int) -> None:
        self.max_length.setMaximum(context)
        self.max_length.setToolTip(f"At most the model's context, {context:,} tokens")
        self.max_length.setValue(settings.max_length)
        self.sample.setCurrentIndex(1 if settings.do_sample else 0)
        self.temperature.setValue(settings.temperature)
        self.top_p.setValue(settings.top_p)
        self.top_k.setValue(settings.top_k)
        self.repetition_penalty.setValue(settings.repetition_penalty)
        self.seed.setValue(-1 if settings.seed is None else settings.seed)
        self._enable()

    def settings(self) -> GenerationSettings:
        return GenerationSettings(
            max_length=self.max_length.value(),
            do_sample=self.sample.currentIndex() == 1,
            temperature=self.temperature.value(),
            top_p=self.top_p.value(),
            top_k=self.top_k.value(),
            repetition_penalty=self.repetition_penalty.value(),
            seed=None if self.seed.value() < 0 else self.seed.value(),
        )

    def _enable(self) -> None:
        sampling = self.sample.currentIndex() == 1
        for widget in (self.temperature, self.top_p, self.top_k, self.seed):
            widget.setEnabled(sampling)


def _spin(low: float, high: float, step: float, decimals: int) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setDecimals(decimals)
    return spin
