"""Operations on a running deployment (``forestops check``)."""
