"""Images: reading and writing files, resizing and blurring, colour transforms, region masks, thumbnail grids."""
