"""2D->3D lifting: a temporal convolutional network trained on real motion capture, and a
foot-contact network on the same input."""
from lift3d.lifting.contact import foot_contacts, load_contact_net
from lift3d.lifting.lift import StreamingLifter, lift, load_lifter, root_translation
from lift3d.lifting.model import Lifter

__all__ = ["Lifter", "StreamingLifter", "foot_contacts", "lift", "load_contact_net", "load_lifter",
           "root_translation"]
