"""Face privacy: detection (MediaPipe, CenterFace, combined) and anonymization. Pure numpy cores."""
