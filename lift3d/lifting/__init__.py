"""2D->3D lifting: a temporal convolutional network trained on real motion capture."""
from lift3d.lifting.lift import StreamingLifter, lift, load_lifter, root_translation
from lift3d.lifting.model import Lifter

__all__ = ["Lifter", "StreamingLifter", "lift", "load_lifter", "root_translation"]
