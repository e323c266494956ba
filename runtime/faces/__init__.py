"""Real photos: find every face (CenterFace), parse each, composite one label map."""
