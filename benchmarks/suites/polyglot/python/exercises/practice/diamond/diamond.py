def diamond(letter):
    pass
